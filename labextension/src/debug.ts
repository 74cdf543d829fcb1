/**
 * "Debug in kernel": `%cellpipe debug RUN "STEP"` run in the notebook's kernel, which loads the
 * values and parameters step STEP of run RUN received (extension/magics.py) and says which cell
 * failed, so the user re-runs that cell in the notebook.
 *
 * The step's name is the user's text (any text but commas), so it never becomes code: the
 * magic's line is a Python string literal (JSON's escapes are Python's) handed to the magic's
 * function itself. Typed as `%cellpipe ...`, IPython would first expand `{expression}` and
 * `$name` in the line (its var_expand evaluates them), so a step named `{os.system(...)}`
 * would run; the magic's function takes the line as it is. Inside the line the name is in
 * double quotes for the magic's shlex, with `"` and `\` escaped.
 */
import * as nbformat from '@jupyterlab/nbformat';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import { errorMessage } from './model';

/** A run id as the server's routes take it (server_ext/handlers.py `_RUN`). */
const RUN_ID = /^[\w.-]+$/;

/** The step name in double quotes for shlex (POSIX): `"` and `\` escaped, nothing else. */
export function quoteStep(step: string): string {
  return '"' + step.replace(/[\\"]/g, match => '\\' + match) + '"';
}

/**
 * The `%cellpipe` line: `debug RUN "STEP"` (`debug -- RUN "STEP"` when the name starts with
 * `-`, so that it is not read as an option). Refuses what is no run id or step name.
 */
export function debugLine(runId: string, step: string): string {
  if (!RUN_ID.test(runId)) {
    throw new Error(`not a run id: ${JSON.stringify(runId)}`);
  }
  if (!step) {
    throw new Error('name the step to debug');
  }
  const endOfOptions = step.startsWith('-') ? '-- ' : '';
  return `debug ${endOfOptions}${runId} ${quoteStep(step)}`;
}

/** What the user reads: the magic as they would type it. */
export function debugMagic(runId: string, step: string): string {
  return `%cellpipe ${debugLine(runId, step)}`;
}

/**
 * The code run in the kernel: loads the extension (a no-op when it is loaded, and silent,
 * unlike `%load_ext` which then says so), then calls the `%cellpipe` magic's function with
 * the line as a Python string literal.
 */
export function debugCode(runId: string, step: string): string {
  // JSON's escapes are Python's; U+2028/9, which JSON leaves raw, escaped too: one line
  const line = JSON.stringify(debugLine(runId, step)).replace(
    /[\u2028\u2029]/g,
    char => `\\u${char.charCodeAt(0).toString(16)}`
  );
  return [
    'get_ipython().extension_manager.load_extension("cellpipe")',
    `get_ipython().find_line_magic("cellpipe")(${line})`
  ].join('\n');
}

/** What running it gave: the kernel's outputs (as nbformat outputs) and how it ended. */
export interface IDebugResult {
  status: 'ok' | 'error' | 'abort';
  outputs: nbformat.IOutput[];
}

/** The nbformat output an IOPub message stands for, or null (status, input, clear ...). */
export function outputOf(
  msg: KernelMessage.IIOPubMessage
): nbformat.IOutput | null {
  const type = msg.header.msg_type;
  const content = msg.content as Record<string, unknown>;
  if (type === 'stream') {
    return {
      output_type: 'stream',
      name: content.name,
      text: content.text
    } as nbformat.IStream;
  }
  if (type === 'display_data' || type === 'execute_result') {
    return {
      output_type: type,
      data: content.data,
      metadata: content.metadata ?? {},
      ...(type === 'execute_result'
        ? { execution_count: content.execution_count ?? null }
        : {})
    } as nbformat.IOutput;
  }
  if (type === 'error') {
    return {
      output_type: 'error',
      ename: content.ename,
      evalue: content.evalue,
      traceback: content.traceback
    } as nbformat.IError;
  }
  return null;
}

/** Run the debug command in `kernel`; resolves with what it printed and how it ended. */
export async function runDebug(
  kernel: Kernel.IKernelConnection,
  runId: string,
  step: string
): Promise<IDebugResult> {
  const code = debugCode(runId, step);
  const outputs: nbformat.IOutput[] = [];
  const future = kernel.requestExecute({
    code,
    silent: false,
    store_history: false, // the user's In[n] numbering stays theirs
    allow_stdin: false,
    stop_on_error: false
  });
  future.onIOPub = msg => {
    const output = outputOf(msg);
    if (output) {
      outputs.push(output);
    }
  };
  const reply = await future.done;
  const status = reply.content.status;
  return {
    status: status === 'ok' ? 'ok' : status === 'abort' ? 'abort' : 'error',
    outputs
  };
}

/** One "Debug in kernel" of a step of a run: under way, done, or refused before it ran. */
export interface IDebugState {
  runId: string;
  step: string;
  /** The magic, as the user would type it. */
  magic: string;
  running: boolean;
  result: IDebugResult | null;
  /** Why it could not run at all (no kernel, ...). */
  error: string | null;
}

/** The last "Debug in kernel" of each step, per notebook. */
export class DebugRuns {
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The state of step `step` of run `runId`, if it was debugged. */
  get(runId: string, step: string): IDebugState | null {
    return this._states.get(key(runId, step)) ?? null;
  }

  /** Run the debug command in the kernel (null: the notebook has none); the state follows it. */
  async start(
    kernel: Kernel.IKernelConnection | null,
    runId: string,
    step: string
  ): Promise<IDebugState> {
    let state: IDebugState = {
      runId,
      step,
      magic: '',
      running: true,
      result: null,
      error: null
    };
    const id = key(runId, step);
    const set = (next: IDebugState) => {
      state = next;
      this._states.set(id, next);
      this._changed.emit();
    };
    try {
      state.magic = debugMagic(runId, step);
    } catch (error) {
      set({ ...state, running: false, error: errorMessage(error) });
      return state;
    }
    if (!kernel) {
      set({
        ...state,
        running: false,
        error:
          'The notebook has no kernel running: start one (Kernel → Restart Kernel…), then debug the step again.'
      });
      return state;
    }
    set(state);
    try {
      const result = await runDebug(kernel, runId, step);
      set({ ...state, running: false, result });
    } catch (error) {
      set({ ...state, running: false, error: errorMessage(error) });
    }
    return state;
  }

  dispose(): void {
    this._states.clear();
    Signal.clearData(this);
  }

  private _states = new Map<string, IDebugState>();
  private _changed = new Signal<this, void>(this);
}

function key(runId: string, step: string): string {
  return JSON.stringify([runId, step]);
}
