/**
 * Renders Hugging Face chat templates with @huggingface/jinja so the text matches Python's jinja2 as
 * transformers configures it (trim_blocks, lstrip_blocks, loopcontrols, json.dumps-style tojson,
 * raise_exception, strftime_now, `{% generation %}` blocks). Where the JS engine differs from jinja2
 * we patch around it here, in one place; docs/templates.md lists every known difference and the
 * fixtures in test/oracle/templates pin the behaviour byte for byte.
 */
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';
import { UserError } from '../util/progress';
import { strftime } from './strftime';
import { locateSyntaxError } from './syntax';

/** One chat message. Content is usually a string; multimodal templates take a list of parts. */
export interface ChatMessage {
  role: string;
  content?: string | null | Array<Record<string, unknown>>;
  /** OpenAI-style tool calls: [{ id, type: 'function', function: { name, arguments } }]. */
  tool_calls?: unknown[];
  tool_call_id?: string;
  name?: string;
  reasoning_content?: string;
  // Other fields are passed to the template as they are (no index signature, so narrower message types fit).
}

export interface RenderOptions {
  messages: ChatMessage[];
  /** null = Python's None (what transformers passes when there are no tools); undefined = not passed at all. */
  tools?: unknown[] | null;
  documents?: unknown[] | null;
  addGenerationPrompt?: boolean;
  /** Special tokens as strings (transformers passes its special_tokens_map): bos_token, eos_token, ... */
  specialTokens?: Record<string, string | undefined>;
  /** Extra template arguments, e.g. { enable_thinking: false }. */
  extra?: Record<string, unknown>;
  /** The clock strftime_now reads (UTC). Default: now. Tests pin it. */
  now?: Date;
}

export interface RenderResult {
  text: string;
  /** [start, end) UTF-16 offsets of each `{% generation %}` block's output, in render order. */
  generationSpans: Array<[number, number]>;
}

/** raise_exception() from the template: the message is the template author's, meant for the user. */
export class TemplateRaisedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateRaisedError';
  }
}

/** Anything else that went wrong while parsing or rendering a template. */
export class TemplateRenderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateRenderError';
  }
}

// Noncharacters (never in real text) mark where `{% generation %}` blocks start and end.
const GEN_OPEN = '\uFDD0';
const GEN_CLOSE = '\uFDD1';

/**
 * `{% generation %}` is a transformers extension that jinja2 learns from an Extension and the JS engine
 * does not know. Rewritten into if-blocks that print a marker, whitespace control kept: `{%- generation %}`
 * strips like `{%- if true %}`, and trim_blocks/lstrip_blocks see block tags at the same places.
 */
function rewriteGenerationTags(source: string): { source: string; hasGeneration: boolean } {
  let hasGeneration = false;
  const out = source
    .replace(/\{%([-+]?)\s*generation\s*([-+]?)%\}/g, (_m, l: string, r: string) => {
      hasGeneration = true;
      return `{%${l} if true %}{{ "${GEN_OPEN}" }}{% endif ${r}%}`;
    })
    .replace(/\{%([-+]?)\s*endgeneration\s*([-+]?)%\}/g, (_m, l: string, r: string) => {
      return `{%${l} if true %}{{ "${GEN_CLOSE}" }}{% endif ${r}%}`;
    });
  return { source: out, hasGeneration };
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the engine's AST and runtime value classes are not exported */
type Node = any;

const STRIP_METHODS = new Set(['strip', 'lstrip', 'rstrip']);

/**
 * Python's str.strip/lstrip/rstrip take an optional set of characters (Qwen 3 uses `.rstrip('\n')`);
 * the JS engine ignores the argument and strips all whitespace. Calls with arguments are rewritten
 * into a call of our own global `__lathe_strip(text, mode, chars)`.
 */
function rewriteAst(node: Node): void {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const x of node) rewriteAst(x);
    return;
  }
  for (const key of Object.keys(node)) rewriteAst(node[key]);
  if (
    node.type === 'CallExpression' &&
    node.callee?.type === 'MemberExpression' &&
    !node.callee.computed &&
    node.callee.property?.type === 'Identifier' &&
    STRIP_METHODS.has(node.callee.property.value) &&
    node.args.length > 0
  ) {
    const mode = node.callee.property.value as string;
    const target = node.callee.object;
    node.callee = { type: 'Identifier', value: '__lathe_strip' };
    node.args = [target, { type: 'StringLiteral', value: mode }, ...node.args];
  }
  // `{% for c in text %}` walks characters in Python; the engine only loops over lists and dicts.
  if (node.type === 'For' && node.iterable) {
    if (node.iterable.type === 'SelectExpression') node.iterable.lhs = { type: '__LatheIter', operand: node.iterable.lhs };
    else node.iterable = { type: '__LatheIter', operand: node.iterable };
  }
  // `x|string` and `x|trim` call str(x) first in jinja2 (lists and dicts print as Python repr);
  // the engine rejects them on non-strings. Handled by our evaluate() below.
  if (
    node.type === 'FilterExpression' &&
    node.filter?.type === 'Identifier' &&
    (node.filter.value === 'string' || node.filter.value === 'trim')
  ) {
    const operand = node.operand;
    const mode = node.filter.value as string;
    for (const key of Object.keys(node)) delete node[key];
    Object.assign(node, { type: '__LatheStr', operand, mode });
  }
}

function pyStrip(text: unknown, mode: string, chars: unknown): string {
  if (typeof text !== 'string') throw new TemplateRenderError(`'${typeof text}' object has no attribute '${mode}'`);
  if (chars === null || chars === undefined) {
    // Python strips Unicode whitespace when no characters are given.
    if (mode === 'strip') return text.trim();
    return mode === 'lstrip' ? text.trimStart() : text.trimEnd();
  }
  if (typeof chars !== 'string') throw new TemplateRenderError(`${mode} arg must be None or str`);
  const set = new Set(Array.from(chars));
  const cps = Array.from(text);
  let a = 0;
  let b = cps.length;
  if (mode !== 'rstrip') while (a < b && set.has(cps[a]!)) a++;
  if (mode !== 'lstrip') while (b > a && set.has(cps[b - 1]!)) b--;
  return cps.slice(a, b).join('');
}

/** Python's repr() of a string: single quotes unless the text has ' and no ". */
function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + quote;
}

/** Python's repr() of a runtime value, as jinja2 prints lists and dicts: [1, 'a', None, True]. */
function pyRepr(v: Node): string {
  switch (v?.type) {
    case 'StringValue':
      return pyStrRepr(v.value);
    case 'BooleanValue':
      return v.value ? 'True' : 'False';
    case 'NullValue':
    case 'UndefinedValue':
      return 'None';
    case 'ArrayValue':
      return '[' + (v.value as Node[]).map(pyRepr).join(', ') + ']';
    case 'TupleValue':
      return '(' + (v.value as Node[]).map(pyRepr).join(', ') + ((v.value as Node[]).length === 1 ? ',)' : ')');
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
      return '{' + Array.from((v.value as Map<string, Node>).entries()).map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(', ') + '}';
    default:
      return String(v?.toString());
  }
}

/** What jinja2 prints for `{{ value }}`: str(value). */
function pyStr(v: Node): string {
  switch (v?.type) {
    case 'StringValue':
      return v.value;
    case 'BooleanValue':
    case 'NullValue':
    case 'ArrayValue':
    case 'TupleValue':
    case 'ObjectValue':
    case 'KeywordArgumentsValue':
      return pyRepr(v);
    case 'UndefinedValue':
      return '';
    default:
      return String(v?.toString());
  }
}

function pyTypeName(v: Node): string {
  const names: Record<string, string> = {
    StringValue: 'str', IntegerValue: 'int', FloatValue: 'float', BooleanValue: 'bool', NullValue: 'NoneType',
    UndefinedValue: 'Undefined', ArrayValue: 'list', TupleValue: 'tuple', ObjectValue: 'dict',
  };
  return names[v?.type as string] ?? String(v?.type);
}

/** A value of the engine's own runtime classes (not exported), so the engine sees the types it expects. */
function makeValue(value: unknown): Node {
  const probe = new Environment();
  probe.set('v', value);
  return probe.lookupVariable('v');
}
const makeString = (text: string): Node => makeValue(text);

// Statements whose value is not printed (the engine returns NullValue for them).
const SILENT = new Set(['Set', 'Comment', 'Macro', 'Break', 'Continue']);

/** Binary operators whose undefined operands we handle as jinja2 does (the rest go to the engine as they are). */
const UNDEFINED_AWARE = new Set(['+', '-', '*', '/', '//', '%', '**', '==', '!=', '~', 'in', 'not in', '<', '>', '<=', '>=']);

/** jinja2's UndefinedError text for the expression that produced the undefined value. */
function undefinedMessage(expr: Node): string {
  if (expr?.type === 'Identifier') return `'${String(expr.value)}' is undefined`;
  if (expr?.type === 'MemberExpression' && !expr.computed && expr.property?.type === 'Identifier') {
    return `'${String(expr.property.value)}' is undefined (no such attribute)`;
  }
  return 'a value used here is undefined';
}

const KEEP = Symbol('keep');

// What jinja2's filters return for the default Undefined (measured with jinja2 3.1; test/oracle/templates).
const UNDEFINED_FILTERS: Record<string, 'zero' | 'list' | 'empty' | 'undefined' | 'raise'> = {
  length: 'zero', count: 'zero', sum: 'zero', wordcount: 'zero',
  list: 'list', items: 'list', map: 'list', select: 'list', reject: 'list', selectattr: 'list', rejectattr: 'list',
  sort: 'list', unique: 'list', reverse: 'list', batch: 'list', groupby: 'list',
  join: 'empty', string: 'empty', upper: 'empty', lower: 'empty', trim: 'empty', title: 'empty', capitalize: 'empty',
  safe: 'empty', e: 'empty', escape: 'empty', replace: 'empty', truncate: 'empty', format: 'empty', striptags: 'empty',
  first: 'undefined', last: 'undefined', min: 'undefined', max: 'undefined',
  int: 'raise', float: 'raise', abs: 'raise', dictsort: 'raise', indent: 'raise', attr: 'raise', xmlattr: 'raise',
  filesizeformat: 'raise', round: 'raise', tojson: 'raise',
};

/** A filter applied to an undefined value, as jinja2's default Undefined answers it; KEEP leaves it to the engine (default, ...). */
function undefinedFilter(filter: Node, operand: Node): Node {
  const name = (filter?.type === 'CallExpression' ? filter.callee?.value : filter?.value) as string | undefined;
  const kind = name === undefined ? undefined : UNDEFINED_FILTERS[name];
  switch (kind) {
    case 'zero':
      return makeValue(0);
    case 'list':
      return makeValue([]);
    case 'empty':
      return makeString('');
    case 'undefined':
      return makeValue(undefined);
    case 'raise':
      if (name === 'tojson') throw new TemplateRenderError('Object of type Undefined is not JSON serializable');
      throw new TemplateRenderError(undefinedMessage(operand));
    default:
      return KEEP;
  }
}

/**
 * The engine skips None in output and prints booleans/lists/dicts the JavaScript way. jinja2 prints
 * str(value): None, True, [1, 'a']. Only this interpreter instance is changed, never the library.
 */
function patchInterpreter(interp: Interpreter): void {
  const self = interp as Node;
  const evaluate = self.evaluate.bind(interp);
  const evaluateBinary = self.evaluateBinaryExpression.bind(interp);
  // An already-evaluated operand handed back to the engine (see the '+' check below).
  self.evaluate = (statement: Node, environment: Node) => {
    if (statement?.type === '__LatheValue') return statement.value;
    if (statement?.type === '__LatheIter') {
      const value = self.evaluate(statement.operand, environment);
      // jinja2's default Undefined iterates as empty: `{% for t in tools %}` without tools renders nothing.
      if (value?.type === 'UndefinedValue') return makeValue([]);
      return value?.type === 'StringValue' ? makeValue(Array.from(value.value as string)) : value;
    }
    if (statement?.type === 'MemberExpression') {
      // Attribute or item access on an undefined value raises in jinja2 (`tools.name`, `messages[9].role`).
      const object = self.evaluate(statement.object, environment);
      if (object?.type === 'UndefinedValue') throw new TemplateRenderError(undefinedMessage(statement.object));
      return evaluate({ ...statement, object: { type: '__LatheValue', value: object } }, environment);
    }
    if (statement?.type === 'FilterExpression') {
      const operand = self.evaluate(statement.operand, environment);
      if (operand?.type === 'UndefinedValue') {
        const result = undefinedFilter(statement.filter, statement.operand);
        if (result !== KEEP) return result;
      }
      return evaluate({ ...statement, operand: { type: '__LatheValue', value: operand } }, environment);
    }
    if (statement?.type === 'TestExpression' && (statement.test?.value === 'iterable' || statement.test?.value === 'sequence')) {
      const operand = self.evaluate(statement.operand, environment);
      // Undefined is an (empty) iterable sequence in jinja2.
      if (operand?.type === 'UndefinedValue') return makeValue(!statement.negate);
      return evaluate({ ...statement, operand: { type: '__LatheValue', value: operand } }, environment);
    }
    if (statement?.type === '__LatheStr') {
      const text = pyStr(self.evaluate(statement.operand, environment));
      return makeString(statement.mode === 'trim' ? text.trim() : text);
    }
    return evaluate(statement, environment);
  };
  self.evaluateBinaryExpression = (node: Node, environment: Node) => {
    const op = node.operator?.value as string;
    if (!UNDEFINED_AWARE.has(op)) return evaluateBinary(node, environment);
    const left = self.evaluate(node.left, environment);
    const right = self.evaluate(node.right, environment);
    const again = (l: Node, r: Node): Node =>
      evaluateBinary({ ...node, left: { type: '__LatheValue', value: l }, right: { type: '__LatheValue', value: r } }, environment);
    const lu = left.type === 'UndefinedValue';
    const ru = right.type === 'UndefinedValue';
    if (op === '==' || op === '!=') {
      // Undefined equals only another Undefined (the engine compares `undefined == null` the JavaScript way).
      if (lu || ru) return makeValue((lu && ru) === (op === '=='));
      return again(left, right);
    }
    if (op === '~') {
      // str(Undefined) is ''.
      if (lu || ru) return makeString((lu ? '' : pyStr(left)) + (ru ? '' : pyStr(right)));
      return again(left, right);
    }
    if (op === 'in' || op === 'not in') {
      if (lu && right.type === 'StringValue') {
        throw new TemplateRenderError(`'in <string>' requires string as left operand, not Undefined`);
      }
      if (lu || ru) return makeValue(op === 'not in');
      return again(left, right);
    }
    if (lu) throw new TemplateRenderError(undefinedMessage(node.left));
    if (ru) throw new TemplateRenderError(undefinedMessage(node.right));
    if (op !== '+') return again(left, right);
    // Python refuses str + non-str (jinja2 raises); the engine would glue the JSON text on.
    if ((left.type === 'StringValue') !== (right.type === 'StringValue')) {
      throw new TemplateRenderError(
        `can only concatenate ${pyTypeName(left)} (not "${pyTypeName(right)}") to ${pyTypeName(left)}`,
      );
    }
    return again(left, right);
  };
  self.evaluateBlock = function (statements: Node[], environment: Node) {
    let result = '';
    for (const statement of statements) {
      const value = self.evaluate(statement, environment);
      if (SILENT.has(statement.type)) continue;
      result += pyStr(value);
    }
    return makeString(result);
  };
}

export interface CompiledTemplate {
  source: string;
  hasGeneration: boolean;
  render(options: RenderOptions): RenderResult;
}

/**
 * A template whose Jinja syntax is broken: one plain message naming where the template came from, the
 * line and what is wrong there (templates/syntax.ts), meant to be shown as it is.
 */
export class TemplateSyntaxError extends UserError {
  constructor(readonly origin: string, readonly line: number | null, message: string) {
    super('template-syntax', message,
      `Fix the Jinja syntax in ${origin}${line !== null ? ` at line ${line}` : ''}, or choose a built-in template (\`lathe template list\`).`);
    this.name = 'TemplateSyntaxError';
  }
}

/**
 * Parses a template once; render() is then cheap enough to call per message prefix. `origin` names
 * where the source came from (a file, "chat_template in tokenizer_config.json") for error messages.
 */
export function compileTemplate(source: string, origin?: string): CompiledTemplate {
  if (typeof source !== 'string' || source.length === 0) {
    throw new TemplateRenderError('The chat template is empty.');
  }
  const rewritten = rewriteGenerationTags(source);
  let program: Node;
  try {
    program = parse(tokenize(rewritten.source, { lstrip_blocks: true, trim_blocks: true }));
  } catch (e) {
    const where = locateSyntaxError(source);
    const what = origin ? `The chat template in ${origin}` : 'The chat template';
    const message = where
      ? `${what} has a syntax error at line ${where.line} of the template, ${where.snippet}: ${where.reason}.`
      : `${what} has a syntax error: ${(e as Error).message}.`;
    throw new TemplateSyntaxError(origin ?? 'the template', where?.line ?? null, message);
  }
  rewriteAst(program);
  return {
    source,
    hasGeneration: rewritten.hasGeneration,
    render(options: RenderOptions): RenderResult {
      return renderProgram(program, rewritten.hasGeneration, options);
    },
  };
}

function checkNoMarkers(value: unknown): void {
  const text = JSON.stringify(value) ?? '';
  if (text.includes(GEN_OPEN) || text.includes(GEN_CLOSE)) {
    throw new TemplateRenderError('The conversation contains the reserved characters U+FDD0/U+FDD1; remove them.');
  }
}

function renderProgram(program: Node, hasGeneration: boolean, options: RenderOptions): RenderResult {
  if (hasGeneration) checkNoMarkers(options.messages);
  const env = new Environment();
  // The engine's defaults first (true/false/none/range), then ours over them.
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    True: true,
    False: false,
    None: null,
    range: (...args: number[]) => pyRange(args),
    raise_exception: (message: unknown) => {
      throw new TemplateRaisedError(String(message));
    },
    strftime_now: (format: string) => strftime(format, options.now ?? new Date()),
    __lathe_strip: pyStrip,
  };
  const vars: Record<string, unknown> = {
    ...(options.specialTokens ?? {}),
    ...(options.extra ?? {}),
    messages: options.messages,
    add_generation_prompt: options.addGenerationPrompt ?? false,
  };
  // `tools: null` is Python's tools=None: defined, and `none` (transformers' apply_chat_template always
  // passes tools= and documents=, None when not given; Lathe's own callers pass null the same way, see
  // inspect.renderOptions). Left out (undefined), the variable is undefined, as when jinja2 gets no such kwarg.
  if (options.tools !== undefined) vars.tools = options.tools;
  if (options.documents !== undefined) vars.documents = options.documents;
  for (const [k, v] of Object.entries({ ...globals, ...vars })) {
    if (v !== undefined) env.set(k, v);
  }
  const interp = new Interpreter(env);
  patchInterpreter(interp);
  let raw: string;
  try {
    raw = (interp.run(program) as { value: string }).value;
  } catch (e) {
    if (e instanceof TemplateRaisedError || e instanceof TemplateRenderError) throw e;
    throw new TemplateRenderError((e as Error).message);
  }
  if (!hasGeneration) return { text: raw, generationSpans: [] };
  return extractGenerationSpans(raw);
}

/** jinja2's sandbox (transformers renders with ImmutableSandboxedEnvironment) refuses longer ranges. */
const MAX_RANGE = 100_000;

function pyRange(args: number[]): number[] {
  const [start, stop, step] = args.length === 1 ? [0, args[0]!, 1] : [args[0]!, args[1]!, args[2] ?? 1];
  if (step === 0) throw new TemplateRenderError('range() arg 3 must not be zero');
  // checked before any element is made: an array of 1e9 numbers ends the whole process (V8 aborts, even in a worker)
  const length = Math.max(0, Math.ceil((stop - start) / step));
  if (!(length <= MAX_RANGE)) throw new TemplateRenderError(`Range too big. The sandbox blocks ranges larger than MAX_RANGE (${MAX_RANGE}).`);
  const out: number[] = [];
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
  else for (let i = start; i > stop; i += step) out.push(i);
  return out;
}

/** Removes the generation markers and returns where each block's text landed. */
function extractGenerationSpans(raw: string): RenderResult {
  let text = '';
  const spans: Array<[number, number]> = [];
  const open: number[] = [];
  let last = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== GEN_OPEN && c !== GEN_CLOSE) continue;
    text += raw.slice(last, i);
    last = i + 1;
    if (c === GEN_OPEN) open.push(text.length);
    else {
      const start = open.pop();
      if (start === undefined) throw new TemplateRenderError('{% endgeneration %} without {% generation %}.');
      spans.push([start, text.length]);
    }
  }
  text += raw.slice(last);
  spans.sort((a, b) => a[0] - b[0]);
  return { text, generationSpans: spans };
}
