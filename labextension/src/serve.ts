/**
 * Serving a run's model from the sidebar (pure): the prediction form's text read into
 * instances, the sample rows it starts with, the answer paired with what was sent, and which
 * service statuses mean "still starting".
 */
import { errorMessage } from './model';
import { CellPipeRequestError } from './request';
import { IRunModel, JSONValue } from './tokens';

/**
 * What went wrong with a tune or serve request, for people: a 404 that is not the server's
 * JSON (no `reason`) means the route itself is missing, a server extension older than this
 * sidebar, not a missing tune or run.
 */
export function routeErrorMessage(error: unknown, route: string): string {
  if (
    error instanceof CellPipeRequestError &&
    error.status === 404 &&
    !error.reason
  ) {
    return `the server has no ${route} route: its cellpipe server extension is older than this sidebar (upgrade cellpipe on the server, then restart it)`;
  }
  return errorMessage(error);
}

/** The serving engines (ARCHITECTURE.md's vocabulary), with words for the dialog. */
export const SERVE_ENGINES: Record<string, string> = {
  local: "local: KServe's model server on this machine",
  kserve: 'kserve: an InferenceService on the cluster'
};

/** Statuses of a service that is not answering yet: the panel asks again until it is. */
const STARTING = new Set(['Pending', 'Starting', 'Creating', 'Unknown']);

export function isStarting(status: string): boolean {
  return STARTING.has(status);
}

/** Statuses after which the service answers no more. */
const GONE = new Set(['Failed', 'Stopped', 'Cancelled', 'Deleted']);

export function isGone(status: string): boolean {
  return GONE.has(status);
}

/** The form's first text: the model's sample rows, one row a line. */
export function sampleText(model: IRunModel): string {
  const rows = model.sample?.instances ?? [];
  if (!rows.length) {
    return '[]';
  }
  return `[\n${rows.map(row => `  ${JSON.stringify(row)}`).join(',\n')}\n]`;
}

export type ParsedInstances = { instances: JSONValue[] } | { error: string };

/**
 * The form's text as V1's `instances`: a JSON list of rows, or a whole request body
 * (`{"instances": [...]}`, as the curl line sends it).
 */
export function readInstances(text: string): ParsedInstances {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return { error: `The rows are not JSON: ${why}` };
  }
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    'instances' in value
  ) {
    value = (value as { instances: unknown }).instances;
  }
  if (!Array.isArray(value)) {
    return {
      error: 'Send a JSON list of rows ([[5.1, 3.5, 1.4, 0.2], ...]).'
    };
  }
  if (!value.length) {
    return { error: 'Send at least one row.' };
  }
  return { instances: value as JSONValue[] };
}

/** Each row sent beside what the model answered for it (rows past either end: null). */
export function pairRows(
  instances: ReadonlyArray<JSONValue>,
  predictions: ReadonlyArray<JSONValue>
): { instance: JSONValue | null; prediction: JSONValue | null }[] {
  const count = Math.max(instances.length, predictions.length);
  return Array.from({ length: count }, (_, i) => ({
    instance: i < instances.length ? instances[i] : null,
    prediction: i < predictions.length ? predictions[i] : null
  }));
}

/** A value in a table cell: numbers short, everything else as JSON. */
export function cellText(value: JSONValue | null): string {
  if (value === null) {
    return '';
  }
  if (typeof value === 'number' && !Number.isInteger(value)) {
    return value.toPrecision(4);
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** What the dialog says of a model: `iris (sklearn, step train; scikit-learn 1.6.1)`. */
export function modelLabel(model: IRunModel): string {
  const versions = Object.entries(model.versions ?? {})
    .map(([name, version]) => `${name} ${version}`)
    .join(', ');
  return `${model.name} (${model.format}, step ${model.step}${versions ? `; ${versions}` : ''})`;
}
