/**
 * Pipeline parameters in the Run dialog (pure): shown as text prefilled from the parameters
 * cell's defaults, read back typed by the default's type, as `cellpipe run -p` reads them.
 */
import {
  ICompileResult,
  IGpuRequest,
  JSONValue,
  ParameterType
} from './tokens';

/** The text a field starts with for a default value. */
export function parameterText(type: ParameterType, value: JSONValue): string {
  if (value === null) {
    return ''; // an optional parameter (`name = None`) left unset: an empty field
  }
  switch (type) {
    case 'str':
      return typeof value === 'string' ? value : JSON.stringify(value);
    case 'bool':
      return value ? 'true' : 'false';
    case 'list':
    case 'dict':
      return JSON.stringify(value);
    default:
      return String(value);
  }
}

export type ParsedParameter = { value: JSONValue } | { error: string };

/** A field's text as a value of the parameter's type, or what is wrong with it. */
export function parseParameter(
  name: string,
  type: ParameterType,
  text: string
): ParsedParameter {
  const trimmed = text.trim();
  switch (type) {
    case 'str':
      return { value: text };
    case 'int':
      if (!/^[+-]?\d+$/.test(trimmed)) {
        return { error: `${name}: '${text}' is not a whole number (int)` };
      }
      return { value: parseInt(trimmed, 10) };
    case 'float': {
      const value = Number(trimmed);
      if (trimmed === '' || !Number.isFinite(value)) {
        return { error: `${name}: '${text}' is not a number (float)` };
      }
      return { value };
    }
    case 'bool':
      if (/^(true|1|yes)$/i.test(trimmed)) {
        return { value: true };
      }
      if (/^(false|0|no)$/i.test(trimmed)) {
        return { value: false };
      }
      return { error: `${name}: '${text}' is not true or false (bool)` };
    case 'list':
    case 'dict': {
      let value: unknown;
      try {
        value = JSON.parse(trimmed);
      } catch {
        return { error: `${name}: '${text}' is not JSON (${type})` };
      }
      const isList = Array.isArray(value);
      const isDict =
        value !== null && typeof value === 'object' && !Array.isArray(value);
      if ((type === 'list' && !isList) || (type === 'dict' && !isDict)) {
        return {
          error: `${name}: '${text}' is not a JSON ${type === 'list' ? 'list' : 'object'} (${type})`
        };
      }
      return { value: value as JSONValue };
    }
  }
}

/**
 * All fields read back: the values, and every problem (empty when the run can start).
 * Only the values that differ from the defaults are sent; the server fills the rest in.
 */
export function readParameters(
  types: Record<string, ParameterType>,
  defaults: Record<string, JSONValue>,
  texts: Record<string, string>
): { values: Record<string, JSONValue>; problems: string[] } {
  const values: Record<string, JSONValue> = {};
  const problems: string[] = [];
  for (const [name, type] of Object.entries(types)) {
    const text = texts[name] ?? parameterText(type, defaults[name]);
    if (defaults[name] === null && text.trim() === '') {
      continue; // an optional parameter left empty stays None (the server's default)
    }
    const parsed = parseParameter(name, type, text);
    if ('error' in parsed) {
      problems.push(parsed.error);
    } else if (
      JSON.stringify(parsed.value) !== JSON.stringify(defaults[name])
    ) {
      values[name] = parsed.value;
    }
  }
  return { values, problems };
}

/** A step's GPU choice in the dialog: the count as typed, and the type ('' for any). */
export interface IGpuChoice {
  count: string;
  type: string;
}

export function tagChoice(gpu: IGpuRequest): IGpuChoice {
  return { count: String(gpu.count), type: gpu.type ?? '' };
}

/** The steps whose GPU choice differs from their tag: {STEP: "N" | "N:TYPE"}. */
export function gpuOverrides(
  result: ICompileResult,
  choices: Record<string, IGpuChoice>,
  problems: string[]
): Record<string, string> {
  const overrides: Record<string, string> = {};
  for (const step of result.steps) {
    const gpu = step.resources.gpu;
    const choice = choices[step.name];
    if (!gpu || !choice) {
      continue;
    }
    if (!/^\d+$/.test(choice.count.trim())) {
      problems.push(`${step.name}: the GPU count must be a whole number`);
      continue;
    }
    const tag = tagChoice(gpu);
    const count = String(parseInt(choice.count, 10));
    if (count !== tag.count || choice.type !== tag.type) {
      overrides[step.name] = choice.type ? `${count}:${choice.type}` : count;
    }
  }
  return overrides;
}
