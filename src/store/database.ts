/** The little of PostgreSQL the store needs, served by PGlite (embedded) and node-postgres alike. */
export interface Queryable {
  query<Row = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<Row[]>;
}

export interface Database extends Queryable {
  /** Runs `work` in one transaction: all of it commits, or none of it does. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Probes the connection, for readiness checks. */
  ping(): Promise<void>;
  close(): Promise<void>;
  readonly description: string;
}
