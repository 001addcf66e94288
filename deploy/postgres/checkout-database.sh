#!/bin/sh
# The app's own PostgreSQL role and database, run by compose's `checkout-database` service at every
# start as the superuser (PGHOST, PGUSER, PGPASSWORD). Idempotent: it creates what is missing and
# sets the rest again, so a new CHECKOUT_DB_PASSWORD takes effect at the next start.
#   - role `checkout`: logs in with CHECKOUT_DB_PASSWORD, no superuser, creates no role or database;
#   - database `checkout`: owned by it, closed to every other role but the superuser;
#   - every other database (Temporal's `temporal` and `temporal_visibility`, `postgres`): closed to it.
# A `checkout` database an older compose file made as the superuser passes to the role, tables and all.
set -eu
: "${CHECKOUT_DB_PASSWORD:?set CHECKOUT_DB_PASSWORD}"

# The password travels as a psql variable (:'password' quotes it), never on a command line.
psql -X -q -v ON_ERROR_STOP=1 -v password="$CHECKOUT_DB_PASSWORD" --dbname postgres <<'SQL'
SELECT 'CREATE ROLE checkout' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'checkout') \gexec
ALTER ROLE checkout WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
SELECT 'CREATE DATABASE checkout OWNER checkout' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'checkout') \gexec
ALTER DATABASE checkout OWNER TO checkout;
REVOKE ALL ON DATABASE checkout FROM PUBLIC;
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', datname) FROM pg_database WHERE datname <> 'checkout' AND NOT datistemplate \gexec
SQL

psql -X -q -v ON_ERROR_STOP=1 --dbname checkout <<'SQL'
SELECT format('ALTER TABLE public.%I OWNER TO checkout', tablename) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'checkout' \gexec
SQL
echo "checkout-database: role checkout owns database checkout and may connect to no other"
