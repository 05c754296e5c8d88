/**
 * containerd's filter language, as used by List (Walk):
 *
 *   selectors := selector ("," selector)*        all must match
 *   selector  := fieldpath (operator value)?     no operator: field is present
 *   fieldpath := field ("." field)*
 *   field     := quoted | [A-Za-z0-9_]+
 *   operator  := "==" | "!=" | "~="
 *   value     := quoted | [^\s,]+
 *
 * Several filter strings are OR-ed. containerd's metadata layer finds remote
 * snapshots with `labels."containerd.io/snapshot.ref"==X,parent==Y`, so the
 * grammar, quoting and matching follow containerd's exactly.
 *
 * `~=` values are Go regular expressions, as in containerd: they run on an
 * RE2 engine, in time linear in the input, compiled once per filter. A
 * backtracking engine would let one List call stall the daemon.
 */
import { RE2JS } from 're2js';
import { InvalidArgumentError } from './errors.js';

/**
 * Bounds on one List call's filters. containerd itself sends one short filter
 * per Walk; one filter leaves room for a selector on a snapshot key of the
 * longest length containerd allows (32 KiB), quoted.
 */
export const MAX_FILTER_BYTES = 40 * 1024;
export const MAX_FILTERS = 32;

type Operator = 'present' | '==' | '!=' | '~=';

interface Selector {
  fieldpath: string[];
  operator: Operator;
  value: string;
  regex?: RE2JS;
}

/** Resolves a field path on the object being filtered; undefined = not present. */
export type FieldAdaptor = (fieldpath: readonly string[]) => string | undefined;

export interface Filter {
  match(adaptor: FieldAdaptor): boolean;
}

const ALWAYS: Filter = { match: () => true };

export function parseFilters(filters: readonly string[]): Filter {
  if (filters.length > MAX_FILTERS) {
    throw new InvalidArgumentError(`${filters.length} filters given; at most ${MAX_FILTERS} filters are allowed in one call`);
  }
  const parsed = filters.filter((f) => f !== '').map(parseFilter);
  if (filters.length === 0 || parsed.length < filters.length) return ALWAYS;
  return { match: (adaptor) => parsed.some((f) => f.match(adaptor)) };
}

export function parseFilter(input: string): Filter {
  if (input === '') return ALWAYS;
  const bytes = Buffer.byteLength(input);
  if (bytes > MAX_FILTER_BYTES) {
    throw new InvalidArgumentError(`filter ${JSON.stringify(input.slice(0, 64))}... is ${bytes} bytes; the limit is ${MAX_FILTER_BYTES} bytes per filter`);
  }
  const selectors = new FilterParser(input).parse();
  return { match: (adaptor) => selectors.every((s) => matchSelector(s, adaptor)) };
}

function matchSelector(selector: Selector, adaptor: FieldAdaptor): boolean {
  const value = adaptor(selector.fieldpath);
  switch (selector.operator) {
    case 'present':
      return value !== undefined;
    case '==':
      return value !== undefined && value === selector.value;
    case '!=':
      return value !== selector.value;
    case '~=':
      // containerd matches an absent field as the empty string.
      return (selector.regex as RE2JS).test(value ?? '');
  }
}

const EOF = '';

class FilterParser {
  private pos = 0;

  constructor(private readonly input: string) {}

  parse(): Selector[] {
    const selectors = [this.selector()];
    for (;;) {
      this.skipSpace();
      const ch = this.peek();
      if (ch === EOF) return selectors;
      if (ch !== ',') this.fail(`unexpected input: ${ch}`);
      this.pos++;
      selectors.push(this.selector());
    }
  }

  private selector(): Selector {
    const fieldpath = this.fieldpath();
    this.skipSpace();
    const ch = this.peek();
    if (ch === EOF || ch === ',') return { fieldpath, operator: 'present', value: '' };
    const operator = this.operator();
    const value = this.value(operator === '~=');
    const selector: Selector = { fieldpath, operator, value };
    if (operator === '~=') {
      try {
        selector.regex = RE2JS.compile(value);
      } catch (err) {
        this.fail(`invalid regular expression ${JSON.stringify(value)}: ${(err as Error).message}`);
      }
    }
    return selector;
  }

  private fieldpath(): string[] {
    const fields = [this.field()];
    while (this.peek() === '.') {
      this.pos++;
      fields.push(this.field());
    }
    return fields;
  }

  private field(): string {
    this.skipSpace();
    const ch = this.peek();
    if (ch === '"') return this.quoted(false);
    if (isQuoteChar(ch)) this.fail('invalid quote encountered');
    const start = this.pos;
    while (isFieldChar(this.peek())) this.pos++;
    if (this.pos === start) this.fail('expected field or quoted');
    return this.input.slice(start, this.pos);
  }

  private operator(): Operator {
    const start = this.pos;
    while ('=!~'.includes(this.peek()) && this.peek() !== EOF) this.pos++;
    const op = this.input.slice(start, this.pos);
    if (op === '') this.fail('expected an operator ("=="|"!="|"~=")');
    if (op !== '==' && op !== '!=' && op !== '~=') this.fail(`unsupported operator "${op}"`);
    return op;
  }

  private value(allowAltQuotes: boolean): string {
    this.skipSpace();
    const ch = this.peek();
    if (ch === EOF) this.fail('unexpected end of input, expected value or quoted');
    if (isQuoteChar(ch)) {
      if (ch !== '"' && !allowAltQuotes) this.fail('invalid quote encountered');
      return this.quoted(allowAltQuotes);
    }
    const start = this.pos;
    while (this.peek() !== EOF && this.peek() !== ',' && !/\s/u.test(this.peek())) this.pos++;
    return this.input.slice(start, this.pos);
  }

  /** A Go-syntax quoted string; `/re/` and `|re|` are accepted for regex values. */
  private quoted(allowAltQuotes: boolean): string {
    const quote = this.peek();
    if (quote !== '"' && !allowAltQuotes) this.fail('invalid quote encountered');
    this.pos++;
    let out = '';
    for (;;) {
      const ch = this.peek();
      if (ch === EOF || ch === '\n') this.fail('quoted literal not terminated');
      this.pos++;
      if (ch === quote) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      out += this.escape(quote);
    }
  }

  private escape(quote: string): string {
    const ch = this.peek();
    this.pos++;
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };
    if (ch in simple) return simple[ch] as string;
    if (ch === quote) return quote;
    const digits = (count: number, base: number): string => {
      const text = this.input.slice(this.pos, this.pos + count);
      const valid = base === 8 ? /^[0-7]+$/ : /^[0-9a-fA-F]+$/;
      if (text.length !== count || !valid.test(text)) this.fail('illegal numeric escape sequence');
      this.pos += count;
      return String.fromCodePoint(parseInt(text, base));
    };
    if (ch >= '0' && ch <= '7') {
      this.pos--;
      return digits(3, 8);
    }
    if (ch === 'x') return digits(2, 16);
    if (ch === 'u') return digits(4, 16);
    if (ch === 'U') return digits(8, 16);
    return this.fail('illegal escape sequence');
  }

  private skipSpace(): void {
    while (this.peek() !== EOF && /\s/u.test(this.peek())) this.pos++;
  }

  private peek(): string {
    if (this.pos >= this.input.length) return EOF;
    const ch = this.input[this.pos] as string;
    if (ch === '\0') this.fail('unexpected null');
    return ch;
  }

  private fail(message: string): never {
    throw new InvalidArgumentError(`invalid filter ${JSON.stringify(this.input)} at ${this.pos}: ${message}`);
  }
}

function isFieldChar(ch: string): boolean {
  return ch !== EOF && /[A-Za-z0-9_]/.test(ch);
}

function isQuoteChar(ch: string): boolean {
  return ch === '"' || ch === '/' || ch === '|';
}
