import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import { STRIPE_MOCK_VERSION } from '../../src/temporal/tools';

/**
 * Stripe's OpenAPI spec, as stripe-mock's Go module carries it (the spec stripe-mock validates
 * requests against), turned into JSON Schema so a test can check that an answer has the shape
 * stripe-node and the product expect. Provisioning installs stripe-mock with `go install`, so the
 * module is in Go's module cache; a machine without it fails here with a clear message, never skips.
 */

type Schema = Record<string, unknown>;

interface OpenApiOperation {
  responses: Record<string, { content?: { 'application/json'?: { schema: Schema } } }>;
}

interface OpenApiSpec {
  info: { version: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, Schema> };
}

/** The directory of the provisioned stripe-mock module in Go's module cache (spec and fixtures). */
export function stripeMockModuleDir(): string {
  let modCache: string;
  try {
    modCache = execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    throw new Error(
      `Stripe's OpenAPI spec is read from Go's module cache, but \`go env GOMODCACHE\` failed (${(err as Error).message.split('\n')[0]}): ` +
        'install Go >= 1.25 and run `npm run provision`',
    );
  }
  return path.join(modCache, 'github.com', 'stripe', `stripe-mock@v${STRIPE_MOCK_VERSION}`);
}

export function stripeOpenApiSpecPath(): string {
  const spec = path.join(stripeMockModuleDir(), 'embedded', 'openapi', 'spec3.json');
  if (!fs.existsSync(spec)) {
    throw new Error(
      `Stripe's OpenAPI spec is missing: no ${spec}. \`npm run provision\` puts it there when it builds stripe-mock; ` +
        `if stripe-mock is already cached, fetch the module with \`go mod download github.com/stripe/stripe-mock@v${STRIPE_MOCK_VERSION}\``,
    );
  }
  return spec;
}

/** stripe-mock's fixtures: what it answers for every object (it echoes only the requested ID). */
export function stripeMockFixtures(): { resources: Record<string, Record<string, unknown>> } {
  const file = path.join(path.dirname(stripeOpenApiSpecPath()), 'fixtures3.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as { resources: Record<string, Record<string, unknown>> };
}

const SPEC_ID = 'https://stripe-openapi.test/spec3.json';
const SCHEMA_KEYWORDS = new Set(['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'not']);

/**
 * One OpenAPI 3.0 schema as JSON Schema (draft-07): `nullable: true` becomes "or null", component
 * `$ref`s point into the converted document, and an object with `properties` admits no others.
 * Stripe's response schemas leave `additionalProperties` open; closing them makes a field the
 * emulator invents, or misspells, fail instead of passing unseen. `x-` keywords stay, ignored.
 */
export function toJsonSchema(schema: unknown, refBase: string): unknown {
  if (Array.isArray(schema)) return schema.map((item) => toJsonSchema(item, refBase));
  if (!schema || typeof schema !== 'object') return schema;
  const { nullable, ...rest } = schema as Schema;
  const out: Schema = {};
  for (const [key, value] of Object.entries(rest)) {
    if (key === '$ref') out.$ref = String(value).replace('#/components/schemas/', `${refBase}#/definitions/`);
    else if (key === 'properties') out.properties = mapValues(value as Record<string, unknown>, (property) => toJsonSchema(property, refBase));
    else if (SCHEMA_KEYWORDS.has(key)) out[key] = toJsonSchema(value, refBase);
    else out[key] = value;
  }
  if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return nullable === true ? { anyOf: [out, { type: 'null' }] } : out;
}

function mapValues<T, U>(record: Record<string, T>, fn: (value: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(record).map(([key, value]) => [key, fn(value)]));
}

export interface StripeSpec {
  /** The API version the spec describes (it can trail stripe-node's pinned version). */
  version: string;
  /** Problems of `body` against a component schema (`checkout.session`, `refund`, ...); empty when it conforms. */
  check(schemaName: string, body: unknown): string[];
  /** Problems of `body` as the answer to `method url` with HTTP `status` (200, or the error body otherwise). */
  checkAnswer(method: string, url: string, status: number, body: unknown): string[];
  /** The path template of the operation `method url` calls, e.g. `/v1/checkout/sessions/{session}`. */
  operationOf(method: string, url: string): string;
  /** The values the spec allows for `property` of `schemaName`, e.g. a dispute's `status`. */
  enumOf(schemaName: string, property: string): string[];
  /** Whether the spec lets `method url` expand `expansion` (`line_items`, `data.latest_charge`): its `x-expandableFields`. */
  allowsExpansion(method: string, url: string, expansion: string): boolean;
}

let loaded: StripeSpec | undefined;

/** The spec, read and compiled once per test file (7 MB of JSON). */
export function loadStripeSpec(): StripeSpec {
  loaded ??= compileSpec(JSON.parse(fs.readFileSync(stripeOpenApiSpecPath(), 'utf8')) as OpenApiSpec);
  return loaded;
}

function compileSpec(spec: OpenApiSpec): StripeSpec {
  // strict: false ignores OpenAPI's own keywords (x-expandableFields, x-resourceId...); formats
  // such as `unix-time` are Stripe's, not JSON Schema's, so they are not checked.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false, inlineRefs: false });
  ajv.addSchema({ $id: SPEC_ID, definitions: mapValues(spec.components.schemas, (schema) => toJsonSchema(schema, '')) });
  const validators = new Map<string, ValidateFunction>();
  const validatorOf = (key: string, schema: () => unknown) => {
    let validate = validators.get(key);
    if (!validate) validators.set(key, (validate = ajv.compile(schema() as Schema)));
    return validate;
  };
  const problems = (validate: ValidateFunction, body: unknown) =>
    validate(body) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);

  const operationOf = (method: string, url: string) => findOperation(spec, method, url);
  const responseSchema = (method: string, url: string, status: number): Schema => {
    const operation = spec.paths[operationOf(method, url)]![method.toLowerCase()]!;
    const response = operation.responses[String(status)] ?? operation.responses.default;
    const schema = response?.content?.['application/json']?.schema;
    if (!schema) throw new Error(`the spec has no JSON answer ${status} for ${method} ${operationOf(method, url)}`);
    return schema;
  };

  return {
    version: spec.info.version,
    check: (name, body) => {
      if (!spec.components.schemas[name]) throw new Error(`the spec has no schema ${name}`);
      return problems(validatorOf(`#${name}`, () => ({ $ref: `${SPEC_ID}#/definitions/${name}` })), body);
    },
    checkAnswer: (method, url, status, body) =>
      problems(validatorOf(`${method} ${operationOf(method, url)} ${status}`, () => toJsonSchema(responseSchema(method, url, status), SPEC_ID)), body),
    operationOf,
    enumOf: (name, property) => {
      const values = (spec.components.schemas[name]?.properties as Record<string, Schema> | undefined)?.[property]?.enum;
      if (!Array.isArray(values)) throw new Error(`the spec has no enum ${name}.${property}`);
      return values as string[];
    },
    allowsExpansion: (method, url, expansion) => expandable(spec, responseSchema(method, url, 200), expansion.split('.')),
  };
}

/** The path template `url` matches, literal segments preferred over parameters (`/v1/payment_intents/search` over `{intent}`). */
function findOperation(spec: OpenApiSpec, method: string, url: string): string {
  const segments = new URL(url, 'http://stripe.test').pathname.split('/');
  const matches = Object.keys(spec.paths).filter((template) => {
    const parts = template.split('/');
    return parts.length === segments.length && parts.every((part, i) => part.startsWith('{') || part === segments[i]) && spec.paths[template]![method.toLowerCase()];
  });
  const params = (template: string) => template.split('/').filter((part) => part.startsWith('{')).length;
  const best = matches.sort((a, b) => params(a) - params(b))[0];
  if (!best) throw new Error(`the spec has no operation ${method} ${url}`);
  return best;
}

/** Whether each step of `path` is in the `x-expandableFields` of the object it is read on. */
function expandable(spec: OpenApiSpec, schema: Schema, path: string[]): boolean {
  let current = objectSchema(spec, schema);
  for (const field of path) {
    if (!current || !((current['x-expandableFields'] as string[] | undefined) ?? []).includes(field)) return false;
    current = objectSchema(spec, (current.properties as Record<string, Schema>)[field]!);
  }
  return true;
}

/** The object a property holds: through `$ref`, an array's items and the object branch of `anyOf` [ID, object]. */
function objectSchema(spec: OpenApiSpec, schema: Schema | undefined): Schema | undefined {
  if (!schema) return undefined;
  if (typeof schema.$ref === 'string') return objectSchema(spec, spec.components.schemas[schema.$ref.replace('#/components/schemas/', '')]);
  if (schema.type === 'array') return objectSchema(spec, schema.items as Schema);
  if (Array.isArray(schema.anyOf)) {
    return (schema.anyOf as Schema[]).map((branch) => objectSchema(spec, branch)).find((branch) => branch?.type === 'object');
  }
  return schema;
}
