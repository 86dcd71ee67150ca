// Request validation: bodies are strict (no coercion, unknown fields rejected); querystrings
// and params coerce "10" to 10 as browsers send them. No part may hold a NUL character.
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import { NUL_MESSAGE, nulPath } from '../nul.js';

// ajv-formats ships CommonJS; under NodeNext the callable sits on `default`.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

function makeAjv(options: Options): Ajv {
  const ajv = new Ajv({
    allErrors: false,
    removeAdditional: false,
    useDefaults: true,
    strict: false,
    ...options,
  });
  addFormats(ajv);
  // RFC 3339 allows a leap second (23:59:60Z), which no Date can hold: every time a route takes
  // must be one it can read, or `new Date(t).toISOString()` throws and the answer is a 500. And its
  // UTC form must keep four digits of year: `9999-12-31T23:00:00-05:00` is `+010000-01-01T04:00Z`
  // in UTC, which sorts before every stored time (a `to` like it found nothing).
  const rfc3339 = ajv.formats['date-time'] as { validate: (s: string) => boolean };
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (s) => {
      if (!rfc3339.validate(s)) return false;
      const ms = Date.parse(s);
      if (Number.isNaN(ms)) return false;
      const year = new Date(ms).getUTCFullYear();
      return year >= 0 && year <= 9999;
    },
  });
  return ajv;
}

/** `validate`, then no string of the valid input may hold a NUL (answered as any schema error). */
function refusingNul(validate: ValidateFunction): ValidateFunction {
  const checked = ((data: unknown) => {
    if (!validate(data)) {
      checked.errors = validate.errors;
      return false;
    }
    const at = nulPath(data);
    if (at === undefined) {
      checked.errors = null;
      return true;
    }
    const error: ErrorObject = {
      instancePath: at,
      schemaPath: '',
      keyword: 'nul',
      params: {},
      message: NUL_MESSAGE,
    };
    checked.errors = [error];
    return false;
  }) as ValidateFunction;
  return checked;
}

// Compiled once per process and schema: a validator depends only on its schema and these two
// fixed settings, and compiling the routes' few hundred schemas took about 0.3 s of every start
// (each test file starts servers; `npm run cluster` starts one per node).
let compilers: { strict: Ajv; coercing: Ajv } | undefined;
const compiled = new Map<string, ValidateFunction>();

function validatorFor(schema: object, body: boolean): ValidateFunction {
  compilers ??= { strict: makeAjv({ coerceTypes: false }), coercing: makeAjv({ coerceTypes: 'array' }) };
  const key = `${body ? 'body' : 'coerce'}:${JSON.stringify(schema)}`;
  let validate = compiled.get(key);
  if (!validate) {
    validate = refusingNul((body ? compilers.strict : compilers.coercing).compile(schema));
    compiled.set(key, validate);
  }
  return validate;
}

export function installValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => validatorFor(schema, httpPart === 'body'));
}
