/**
 * Cell tags, read and written: the step editor's model (pure, no JupyterLab imports).
 *
 * The grammar is the README's (converter/tags.py is the reference): `step:NAME`,
 * `after:NAME`, `gpu:N[:TYPE]`, `cpu:Q`, `memory:Q`, `image:REF` and the role words `imports`,
 * `functions`, `parameters`, `metrics`, `skip`; Kale's `block:`, `prev:`, `limit:`,
 * `pipeline-parameters` and `pipeline-metrics` are read too. The editor writes a cell's tags in
 * the dialect the notebook already uses (`detectDialect`), so a Kale notebook keeps its
 * `block:`/`prev:`. Every other tag is kept as it is.
 */

/** What a cell is in the pipeline. `continue`: no role tag, it joins the role above it. */
export type CellRole =
  | 'continue'
  | 'step'
  | 'imports'
  | 'functions'
  | 'parameters'
  | 'metrics'
  | 'skip';

export const ROLE_LABELS: Record<CellRole, string> = {
  continue: 'Continues the cell above',
  step: 'Begins a step',
  imports: 'Imports (in every step)',
  functions: 'Functions (in every step)',
  parameters: 'Pipeline parameters',
  metrics: 'Pipeline metrics',
  skip: 'Skipped (not in the pipeline)'
};

/** The role words and the role each one gives (Kale's spellings included). */
const ROLE_WORDS: Record<string, Exclude<CellRole, 'continue' | 'step'>> = {
  imports: 'imports',
  functions: 'functions',
  parameters: 'parameters',
  'pipeline-parameters': 'parameters',
  metrics: 'metrics',
  'pipeline-metrics': 'metrics',
  skip: 'skip'
};

/** What the step editor shows and writes for one cell. */
export interface ICellSettings {
  role: CellRole;
  /** Step names the cell begins (role `step`); usually one. */
  names: string[];
  /** Steps this step runs after. */
  after: string[];
  /** GPUs: 0 for none. */
  gpuCount: number;
  /** GPU type (the node label's value); '' for any. */
  gpuType: string;
  /** Kubernetes quantities; '' for none. */
  cpu: string;
  memory: string;
  /** Base image of the step; '' for the notebook's. */
  image: string;
}

export const EMPTY_SETTINGS: ICellSettings = {
  role: 'continue',
  names: [],
  after: [],
  gpuCount: 0,
  gpuType: '',
  cpu: '',
  memory: '',
  image: ''
};

/** Kubernetes quantities as people write them (converter/tags.py _QUANTITY). */
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+|[KMGTPE]i|[mkMGTPE])?$/;
/** A node label value (a GPU type). */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Is this tag one the step editor manages (and so rewrites)? */
export function isManagedTag(tag: string): boolean {
  const trimmed = tag.trim();
  if (trimmed in ROLE_WORDS) {
    return true;
  }
  const [key, value] = splitTag(trimmed);
  if (value === null) {
    return false;
  }
  if (
    [
      'step',
      'block',
      'after',
      'prev',
      'gpu',
      'cpu',
      'memory',
      'image'
    ].includes(key)
  ) {
    return true;
  }
  return key === 'limit' && isLimitWeManage(value);
}

function isLimitWeManage(value: string): boolean {
  const resource = value.slice(0, value.lastIndexOf(':'));
  return (
    resource === 'cpu' ||
    resource === 'memory' ||
    resource.endsWith('/gpu') ||
    resource === 'gpu'
  );
}

/** `key:value` -> [key, value]; a plain word -> [word, null]. */
function splitTag(tag: string): [string, string | null] {
  const colon = tag.indexOf(':');
  if (colon < 0) {
    return [tag, null];
  }
  return [tag.slice(0, colon), tag.slice(colon + 1)];
}

/**
 * A cell's tags as the editor shows them. As in Kale, a role word (skip, imports, ...) wins
 * over a step tag on the same cell.
 */
export function readCellSettings(
  tags: ReadonlyArray<string>,
  stepLine: IStepLine | null = null
): ICellSettings {
  const settings: ICellSettings = {
    ...EMPTY_SETTINGS,
    names: [],
    after: []
  };
  let special: CellRole | null = null;
  const all = [...tags, ...(stepLine ? stepLine.tags : [])];
  for (const raw of all) {
    const tag = raw.trim();
    if (tag in ROLE_WORDS) {
      special = special ?? ROLE_WORDS[tag];
      continue;
    }
    const [key, value] = splitTag(tag);
    if (value === null) {
      continue;
    }
    const text = value.trim();
    switch (key) {
      case 'step':
      case 'block':
        if (text && !settings.names.includes(text)) {
          settings.names.push(text);
        }
        break;
      case 'after':
      case 'prev':
        if (text && !settings.after.includes(text)) {
          settings.after.push(text);
        }
        break;
      case 'gpu': {
        const [count, type] = splitTag(value);
        if (/^\d+$/.test(count)) {
          settings.gpuCount = parseInt(count, 10);
          settings.gpuType = type ?? '';
        }
        break;
      }
      case 'cpu':
        settings.cpu = value;
        break;
      case 'memory':
        settings.memory = value;
        break;
      case 'image':
        settings.image = value;
        break;
      case 'limit': {
        const cut = value.lastIndexOf(':');
        const resource = value.slice(0, cut);
        const quantity = value.slice(cut + 1);
        if (resource === 'cpu') {
          settings.cpu = quantity;
        } else if (resource === 'memory') {
          settings.memory = quantity;
        } else if (
          (resource.endsWith('/gpu') || resource === 'gpu') &&
          /^\d+$/.test(quantity)
        ) {
          settings.gpuCount = parseInt(quantity, 10);
        }
        break;
      }
      default:
        break;
    }
  }
  settings.role = special ?? (settings.names.length ? 'step' : 'continue');
  return settings;
}

/**
 * Can a cell in this role carry a step's resources (gpu:, cpu:, memory:, image:)? A cell that
 * continues a step adds them to its step (the converter merges them).
 */
export function carriesStepSettings(role: CellRole): boolean {
  return role === 'step' || role === 'continue';
}

/** Can a cell in this role say what its step runs after? Only the cell that begins the step. */
export function carriesAfter(role: CellRole): boolean {
  return role === 'step';
}

/**
 * The settings after the role changes from `draft.role` to `role`: what no longer applies is
 * dropped (so no stray `after:` is left on a cell that now continues another step, which
 * would make its new step run after itself), and a new step in a notebook that orders its
 * steps with `after:`/`prev:` starts after the step above (`stepAbove`).
 */
export function changeRole(
  draft: ICellSettings,
  role: CellRole,
  stepAbove: string | null = null
): ICellSettings {
  if (role === draft.role) {
    return draft;
  }
  const next: ICellSettings = { ...draft, role };
  if (!carriesAfter(role)) {
    next.after = [];
  }
  if (!carriesStepSettings(role) || draft.role === 'step') {
    // the resources were the step's own: they would move to the step above, unasked
    next.gpuCount = 0;
    next.gpuType = '';
    next.cpu = '';
    next.memory = '';
    next.image = '';
  }
  if (role !== 'step') {
    next.names = [];
  } else if (!next.after.length && stepAbove) {
    next.after = [stepAbove];
  }
  return next;
}

/** How a notebook spells its tags: cellpipe's words, or Kale's where the notebook uses them. */
export interface ITagDialect {
  /** `step` or Kale's `block`. */
  step: 'step' | 'block';
  /** `after` or Kale's `prev`. */
  after: 'after' | 'prev';
  /** `parameters` or Kale's `pipeline-parameters`. */
  parameters: 'parameters' | 'pipeline-parameters';
  /** `metrics` or Kale's `pipeline-metrics`. */
  metrics: 'metrics' | 'pipeline-metrics';
  /** `gpu:N`, `cpu:Q`, `memory:Q`, or Kale's `limit:nvidia.com/gpu:N`, `limit:cpu:Q` ... */
  limits: 'cellpipe' | 'kale';
}

export const CELLPIPE_DIALECT: ITagDialect = {
  step: 'step',
  after: 'after',
  parameters: 'parameters',
  metrics: 'metrics',
  limits: 'cellpipe'
};

/**
 * The dialect of a notebook's tags, word by word: Kale's spelling where the notebook uses it
 * and not cellpipe's (a notebook that mixes `step:` with `prev:` keeps both habits).
 */
export function detectDialect(
  cellTags: ReadonlyArray<ReadonlyArray<string>>
): ITagDialect {
  const used = new Set<string>();
  for (const tags of cellTags) {
    for (const raw of tags) {
      const tag = raw.trim();
      const [key, value] = splitTag(tag);
      used.add(value === null ? tag : `${key}:`);
    }
  }
  const kale = (ours: string, theirs: string) =>
    used.has(theirs) && !used.has(ours);
  return {
    step: kale('step:', 'block:') ? 'block' : 'step',
    after: kale('after:', 'prev:') ? 'prev' : 'after',
    parameters: kale('parameters', 'pipeline-parameters')
      ? 'pipeline-parameters'
      : 'parameters',
    metrics: kale('metrics', 'pipeline-metrics')
      ? 'pipeline-metrics'
      : 'metrics',
    limits:
      used.has('limit:') &&
      !['gpu:', 'cpu:', 'memory:'].some(key => used.has(key))
        ? 'kale'
        : 'cellpipe'
  };
}

/** Does the notebook speak any of Kale's words? */
export function isKaleDialect(dialect: ITagDialect): boolean {
  return (
    dialect.step !== 'step' ||
    dialect.after !== 'after' ||
    dialect.parameters !== 'parameters' ||
    dialect.metrics !== 'metrics' ||
    dialect.limits !== 'cellpipe'
  );
}

/**
 * The cell's new tags: the managed tags rewritten from `settings` in the notebook's dialect
 * (cellpipe's by default), every other tag kept, in its order, after them.
 */
export function writeCellTags(
  tags: ReadonlyArray<string>,
  settings: ICellSettings,
  dialect: ITagDialect = CELLPIPE_DIALECT
): string[] {
  const kept = tags.filter(tag => !isManagedTag(tag));
  const managed: string[] = [];
  switch (settings.role) {
    case 'step':
      for (const name of settings.names) {
        const trimmed = name.trim();
        if (trimmed && !managed.includes(`${dialect.step}:${trimmed}`)) {
          managed.push(`${dialect.step}:${trimmed}`);
        }
      }
      break;
    case 'continue':
      break;
    case 'parameters':
      managed.push(dialect.parameters);
      break;
    case 'metrics':
      managed.push(dialect.metrics);
      break;
    default:
      managed.push(settings.role);
  }
  if (carriesAfter(settings.role)) {
    for (const name of settings.after) {
      const trimmed = name.trim();
      if (trimmed && !managed.includes(`${dialect.after}:${trimmed}`)) {
        managed.push(`${dialect.after}:${trimmed}`);
      }
    }
  }
  if (carriesStepSettings(settings.role)) {
    // Kale's limit: has no GPU type: a typed request is written as cellpipe's gpu:N:TYPE
    const kale = dialect.limits === 'kale';
    if (settings.gpuCount > 0) {
      const type = settings.gpuType.trim();
      managed.push(
        kale && !type
          ? `limit:nvidia.com/gpu:${settings.gpuCount}`
          : `gpu:${settings.gpuCount}${type ? `:${type}` : ''}`
      );
    }
    if (settings.cpu.trim()) {
      managed.push(`${kale ? 'limit:cpu:' : 'cpu:'}${settings.cpu.trim()}`);
    }
    if (settings.memory.trim()) {
      managed.push(
        `${kale ? 'limit:memory:' : 'memory:'}${settings.memory.trim()}`
      );
    }
    if (settings.image.trim()) {
      managed.push(`image:${settings.image.trim()}`);
    }
  }
  return [...managed, ...kept];
}

/**
 * What is wrong with these settings, in the converter's words, before they are written;
 * an empty list when they can be written.
 */
export function validateSettings(settings: ICellSettings): string[] {
  const problems: string[] = [];
  if (settings.role === 'step') {
    if (!settings.names.some(name => name.trim())) {
      problems.push('name the step');
    }
    for (const name of settings.names) {
      if (name.includes(',')) {
        problems.push(`step name '${name}': a step name cannot have a comma`);
      }
    }
  }
  if (!carriesStepSettings(settings.role)) {
    return problems;
  }
  if (
    !Number.isInteger(settings.gpuCount) ||
    settings.gpuCount < 0 ||
    settings.gpuCount > 64
  ) {
    problems.push('the GPU count must be a whole number from 0 to 64');
  }
  if (settings.gpuType && !LABEL_VALUE.test(settings.gpuType.trim())) {
    problems.push(
      `'${settings.gpuType}' is not a valid node label value for a GPU type`
    );
  }
  if (settings.cpu.trim() && !QUANTITY.test(settings.cpu.trim())) {
    problems.push(
      `'${settings.cpu}' is not a Kubernetes quantity (e.g. cpu 500m or 2)`
    );
  }
  if (settings.memory.trim() && !QUANTITY.test(settings.memory.trim())) {
    problems.push(
      `'${settings.memory}' is not a Kubernetes quantity (e.g. memory 4Gi)`
    );
  }
  if (/\s/.test(settings.image.trim())) {
    problems.push('an image reference has no spaces');
  }
  return problems;
}

/** A `%%step NAME [--after A [B ...]] [--gpu N[:TYPE]] ...` first line, as tags. */
export interface IStepLine {
  tags: string[];
}

const STEP_OPTIONS: Record<string, string> = {
  '--after': 'after',
  '--gpu': 'gpu',
  '--cpu': 'cpu',
  '--memory': 'memory',
  '--image': 'image'
};

/** Split a line as a POSIX shell would (quotes and backslashes), enough for `%%step`. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) {
        quote = null;
      } else if (ch === '\\' && quote === '"' && i + 1 < line.length) {
        word += line[++i];
      } else {
        word += ch;
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) {
        words.push(word);
        word = '';
        inWord = false;
      }
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) {
    words.push(word);
  }
  return words;
}

/** The tags a cell's `%%step` first line means; null when the cell has none. */
export function readStepLine(source: string): IStepLine | null {
  const first = source.split('\n', 1)[0].trim();
  if (!first.startsWith('%%step') || /^%%step\S/.test(first)) {
    return null;
  }
  const words = shellWords(first.slice('%%step'.length));
  const tags: string[] = [];
  let option: string | null = null;
  for (const word of words) {
    if (word in STEP_OPTIONS) {
      option = STEP_OPTIONS[word];
      continue;
    }
    if (option === null) {
      tags.push(`step:${word}`);
      option = '';
    } else if (option === '') {
      continue;
    } else {
      tags.push(`${option}:${word}`);
      if (option !== 'after') {
        option = '';
      }
    }
  }
  return { tags };
}
