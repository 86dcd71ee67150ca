// Module boundaries: every Kysely table a module names (selectFrom, updateTable, insertInto,
// deleteFrom, joins, `'t as x'` aliases, subqueries, insertRows, raw `sql` text) must be a table it
// owns by ownership.ts, or one of that file's written exceptions. Pure: reads source files only.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { BOUNDARY_EXCEPTIONS, REPO_EXCEPTIONS, TABLE_OWNERS, type Table } from './ownership.js';

const MODULES = fileURLToPath(new URL('.', import.meta.url));
const MIGRATIONS = fileURLToPath(new URL('../platform/db/', import.meta.url));

const WRITES = new Set(['updateTable', 'insertInto', 'deleteFrom', 'mergeInto', 'replaceInto', 'insertRows']);
const CALLS = [
  'selectFrom',
  'updateTable',
  'insertInto',
  'deleteFrom',
  'mergeInto',
  'replaceInto',
  'insertRows',
  'innerJoin',
  'leftJoin',
  'rightJoin',
  'fullJoin',
  'crossJoin',
  'innerJoinLateral',
  'leftJoinLateral',
];
const isTable = (name: string): name is Table => Object.hasOwn(TABLE_OWNERS, name);

export interface TableRef {
  table: string;
  /** The builder call, `alias` for a `'t as x'` string elsewhere, `sql` for raw SQL text. */
  kind: string;
  line: number;
}

/** Whole-line and block comments out, keeping line numbers (a comment may name a query). */
function withoutComments(source: string): string {
  return source
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/^[ \t]*\/\/.*$/gm, (c) => ' '.repeat(c.length));
}

export function tableRefs(source: string): TableRef[] {
  const code = withoutComments(source);
  const lineAt = (index: number) => code.slice(0, index).split('\n').length;
  const refs: TableRef[] = [];
  const seen = new Set<number>();
  const call = new RegExp(`\\b(${CALLS.join('|')})\\(\\s*(\\[[^\\]]*\\]|(['"\`])[^'"\`]*\\3)`, 'g');
  for (const m of code.matchAll(call)) {
    const args = m[2]!;
    const start = m.index + m[0].length - args.length;
    for (const s of args.matchAll(/(['"`])([a-z_][a-z0-9_]*)(?:\s+as\s+[a-z_][a-z0-9_]*)?\1/gi)) {
      seen.add(start + s.index);
      refs.push({ table: s[2]!, kind: m[1]!, line: lineAt(m.index) });
    }
  }
  // A `'orders as o'` string anywhere else: a table handed to a builder some other way.
  for (const m of code.matchAll(/(['"`])([a-z_][a-z0-9_]*)\s+as\s+[a-z_][a-z0-9_]*\1/gi)) {
    if (seen.has(m.index) || !isTable(m[2]!)) continue;
    refs.push({ table: m[2]!, kind: 'alias', line: lineAt(m.index) });
  }
  for (const m of code.matchAll(/\bsql(?:<[^>`]*>)?`([^`]*)`/g)) {
    for (const s of m[1]!.matchAll(/\b(from|join|update|into)\s+([a-z_][a-z0-9_]*)/gi)) {
      if (!isTable(s[2]!)) continue;
      const write = ['update', 'into'].includes(s[1]!.toLowerCase());
      refs.push({ table: s[2]!, kind: write ? 'sql-write' : 'sql', line: lineAt(m.index + s.index) });
    }
  }
  return refs;
}

const isWrite = (kind: string) => WRITES.has(kind) || kind === 'sql-write';

interface ModuleFile {
  module: string;
  path: string;
  refs: TableRef[];
  /** Modules whose repository this file imports or reaches through their service (`x.repo.`). */
  repos: { module: string; line: number }[];
}

export function repoUses(source: string, modules: ReadonlySet<string>): { module: string; line: number }[] {
  const code = withoutComments(source);
  const lineAt = (index: number) => code.slice(0, index).split('\n').length;
  const uses = [];
  for (const m of code.matchAll(/from\s+'\.\.\/([a-z-]+)\/[a-z-]+\.repo\.js'/g))
    uses.push({ module: m[1]!, line: lineAt(m.index) });
  for (const m of code.matchAll(/\b([a-z]+)\.repo\.(?!js\b)/g))
    if (modules.has(m[1]!)) uses.push({ module: m[1]!, line: lineAt(m.index) });
  return uses;
}

function moduleFiles(): ModuleFile[] {
  const paths = readdirSync(MODULES, { recursive: true, encoding: 'utf8' })
    .filter((p) => p.endsWith('.ts') && !p.endsWith('.test.ts') && p.includes(sep))
    .sort();
  const modules = new Set(paths.map((p) => p.split(sep)[0]!));
  return paths.map((p) => {
    const source = readFileSync(join(MODULES, p), 'utf8');
    return {
      module: p.split(sep)[0]!,
      path: relative(MODULES, join(MODULES, p)).split(sep).join('/'),
      refs: tableRefs(source),
      repos: repoUses(source, modules),
    };
  });
}

/** Each reference that breaks the map, as `file:line kind('table') → owner`. */
function violations(files: ModuleFile[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    for (const r of f.refs) {
      const where = `${f.path}:${r.line} ${r.kind}('${r.table}')`;
      if (!isTable(r.table)) {
        out.push(`${where}: not a table of the schema (a typo, or a table missing from ownership.ts)`);
        continue;
      }
      const owner = TABLE_OWNERS[r.table];
      if (owner === f.module) continue;
      const allowed = BOUNDARY_EXCEPTIONS.some(
        (e) => e.module === f.module && e.tables.includes(r.table as Table) && !isWrite(r.kind),
      );
      if (!allowed) out.push(`${where}: owned by ${owner}; call the ${owner} service instead`);
    }
  }
  return out;
}

describe('module boundaries', () => {
  const files = moduleFiles();

  it('the scanner sees every form a query names its table in', () => {
    const sample = [
      "db.selectFrom('a_one').selectAll()",
      'tx.updateTable(\n  "a_two",\n).set({})',
      "ex.insertInto('a_three')",
      "ex.deleteFrom('a_four as f')",
      "q.innerJoin('a_five as v', 'v.id', 'x.id').leftJoin('a_six', (j) => j)",
      "where(({ selectFrom }) => exists(selectFrom('a_seven as s').select('s.id')))",
      "const insertOne = insertRows('a_eight');",
      "db.selectFrom(['a_nine', 'a_ten as t'])",
      "// db.selectFrom('in_a_comment')",
      "const from = 'orders as o';",
      'await sql`select id from payments where id = ${id} for update`.execute(ex);',
      'await sql`update machines as m set x = 1`.execute(ex);',
    ].join('\n');
    expect(tableRefs(sample).map((r) => `${r.kind}:${r.table}:${r.line}`)).toEqual([
      'selectFrom:a_one:1',
      'updateTable:a_two:2',
      'insertInto:a_three:5',
      'deleteFrom:a_four:6',
      'innerJoin:a_five:7',
      'leftJoin:a_six:7',
      'selectFrom:a_seven:8',
      'insertRows:a_eight:9',
      'selectFrom:a_nine:10',
      'selectFrom:a_ten:10',
      'alias:orders:12',
      'sql:payments:13',
      'sql-write:machines:14',
    ]);
  });

  it('reads the real modules (not an empty folder)', () => {
    const modules = new Set(files.map((f) => f.module));
    expect(modules.size).toBeGreaterThan(15);
    const ownRefs = files.filter((f) => f.module === 'payments').flatMap((f) => f.refs);
    expect(ownRefs.some((r) => r.table === 'payments' && r.kind === 'updateTable')).toBe(true);
  });

  it('every table the migrations create has one owner, and every owned table exists', () => {
    const created = new Set<string>();
    for (const name of readdirSync(MIGRATIONS).filter(
      (n) => /^migration.*\.ts$/.test(n) && !n.endsWith('.test.ts'),
    )) {
      const text = readFileSync(join(MIGRATIONS, name), 'utf8');
      for (const m of text.matchAll(/createTable\(\s*'([a-z_0-9]+)'/g)) created.add(m[1]!);
      // A table rebuilt as a copy (SQLite cannot drop a constraint) takes its old name back.
      for (const m of text.matchAll(/alterTable\(\s*'([a-z_0-9]+)'\s*\)\s*\.renameTo\(\s*'([a-z_0-9]+)'/g)) {
        created.delete(m[1]!);
        created.add(m[2]!);
      }
    }
    expect([...created].sort()).toEqual(Object.keys(TABLE_OWNERS).sort());
  });

  it('every owner is a module folder (or the platform)', () => {
    const modules = new Set(files.map((f) => f.module));
    for (const owner of new Set(Object.values(TABLE_OWNERS))) {
      if (owner !== 'platform') expect(modules, owner).toContain(owner);
    }
  });

  it('no module names a table it does not own, beyond the written read-only exceptions', () => {
    expect(violations(files)).toEqual([]);
  });

  it('the repo scanner sees an imported repository and one reached through a service', () => {
    const sample = [
      "import type { PaymentsRepo } from '../payments/payments.repo.js';",
      "import { createCustomersRepo } from './customers.repo.js';",
      'await deps.customers.repo.update(id, set, tx);',
      'await deps.repo.findById(id);',
    ].join('\n');
    expect(repoUses(sample, new Set(['payments', 'customers']))).toEqual([
      { module: 'payments', line: 1 },
      { module: 'customers', line: 3 },
    ]);
  });

  it("no module calls another module's repository, beyond the written exceptions", () => {
    const out: string[] = [];
    for (const f of files) {
      for (const r of f.repos) {
        if (r.module === f.module) continue;
        if (REPO_EXCEPTIONS.some((e) => e.module === f.module && e.repoOf === r.module)) continue;
        out.push(`${f.path}:${r.line} uses the ${r.module} repository; call the ${r.module} service instead`);
      }
    }
    expect(out).toEqual([]);
  });

  it('every written exception is still used (the list only shrinks)', () => {
    const unused: string[] = [];
    for (const e of BOUNDARY_EXCEPTIONS) {
      const refs = files.filter((f) => f.module === e.module).flatMap((f) => f.refs);
      for (const t of e.tables) {
        if (TABLE_OWNERS[t] === e.module) unused.push(`${e.module}: owns ${t} already`);
        else if (!refs.some((r) => r.table === t)) unused.push(`${e.module}: no longer reads ${t}`);
      }
    }
    for (const e of REPO_EXCEPTIONS) {
      const uses = files.filter((f) => f.module === e.module).flatMap((f) => f.repos);
      if (!uses.some((u) => u.module === e.repoOf))
        unused.push(`${e.module}: no longer uses the ${e.repoOf} repo`);
    }
    expect(unused).toEqual([]);
  });
});
