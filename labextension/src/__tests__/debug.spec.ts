/**
 * "Debug in kernel": the step's name is quoted for the magic and never becomes code; the
 * kernel's outputs come back as nbformat outputs.
 */
import { Kernel, KernelMessage } from '@jupyterlab/services';

import {
  debugCode,
  debugLine,
  debugMagic,
  DebugRuns,
  outputOf,
  quoteStep,
  runDebug
} from '../debug';

const RUN = '20261124-114712-f5a891ba';

/** The Python string literal in the code's last line, read back as JSON reads it. */
function lineOf(code: string): string {
  const last = code.split('\n').pop()!;
  const match = /^get_ipython\(\)\.find_line_magic\("cellpipe"\)\((.*)\)$/.exec(
    last
  );
  expect(match).not.toBeNull();
  return JSON.parse(match![1]);
}

/** shlex (POSIX) inside double quotes: `\` escapes `"` and `\` only. */
function unquote(quoted: string): string {
  expect(quoted.startsWith('"') && quoted.endsWith('"')).toBe(true);
  let out = '';
  for (let i = 1; i < quoted.length - 1; i++) {
    const char = quoted[i];
    if (char === '\\' && (quoted[i + 1] === '"' || quoted[i + 1] === '\\')) {
      out += quoted[++i];
    } else {
      expect(char).not.toBe('"'); // an unescaped quote would end the word
      out += char;
    }
  }
  return out;
}

describe('the debug command', () => {
  it('is the magic the user would type, the step name quoted', () => {
    expect(debugMagic(RUN, 'train model')).toBe(
      `%cellpipe debug ${RUN} "train model"`
    );
    expect(debugLine(RUN, 'load')).toBe(`debug ${RUN} "load"`);
  });

  it('escapes " and \\ in the name, and nothing else', () => {
    expect(quoteStep('say "hi"')).toBe('"say \\"hi\\""');
    expect(quoteStep('a\\b')).toBe('"a\\\\b"');
    expect(quoteStep("it's $HOME {x}")).toBe('"it\'s $HOME {x}"');
  });

  it('reads a name that starts with - as the step, not an option', () => {
    expect(debugLine(RUN, '--help')).toBe(`debug -- ${RUN} "--help"`);
    expect(debugLine(RUN, '-x')).toBe(`debug -- ${RUN} "-x"`);
  });

  it('refuses what is no run id or no step', () => {
    expect(() => debugLine('r1; rm -rf ~', 's')).toThrow('not a run id');
    expect(() => debugLine('r1 "x"', 's')).toThrow('not a run id');
    expect(() => debugLine(RUN, '')).toThrow('name the step');
  });

  const nasty = [
    'train model',
    'a "quoted" \\ name',
    '{__import__("os").system("touch /tmp/pwned")}',
    '$HOME and $$x and {1+1}',
    "it's",
    '") ; import os; os.system("x',
    'tab\there\nand a new line',
    'ünïcode 😀 \u2028',
    '\\',
    '"',
    'ends with \\'
  ];

  it.each(nasty)(
    'keeps the name %j as data: one string literal, the name back intact',
    name => {
      const code = debugCode(RUN, name);
      // two lines of fixed Python: the user's text is only inside the JSON string literal
      const [load, call] = code.split('\n');
      expect(code.split('\n')).toHaveLength(2);
      expect(code).not.toMatch(/[\r\u2028\u2029]/); // no other line break, for any reader
      expect(load).toBe(
        'get_ipython().extension_manager.load_extension("cellpipe")'
      );
      expect(
        call.startsWith('get_ipython().find_line_magic("cellpipe")("')
      ).toBe(true);
      // the literal decodes to the magic's line, whose last word is the name
      const line = lineOf(code);
      const prefix = name.startsWith('-')
        ? `debug -- ${RUN} `
        : `debug ${RUN} `;
      expect(line.startsWith(prefix)).toBe(true);
      expect(unquote(line.slice(prefix.length))).toBe(name);
    }
  );
});

function message(
  msgType: string,
  content: Record<string, unknown>
): KernelMessage.IIOPubMessage {
  return {
    header: { msg_type: msgType } as any,
    parent_header: {},
    metadata: {},
    content,
    channel: 'iopub'
  } as unknown as KernelMessage.IIOPubMessage;
}

describe('outputs of the kernel', () => {
  it('become nbformat outputs; status messages are none', () => {
    expect(
      outputOf(message('stream', { name: 'stdout', text: 'loaded x\n' }))
    ).toEqual({
      output_type: 'stream',
      name: 'stdout',
      text: 'loaded x\n'
    });
    expect(
      outputOf(
        message('error', {
          ename: 'UsageError',
          evalue: 'no run',
          traceback: ['t']
        })
      )
    ).toEqual({
      output_type: 'error',
      ename: 'UsageError',
      evalue: 'no run',
      traceback: ['t']
    });
    expect(
      outputOf(message('display_data', { data: { 'text/plain': 'x' } }))
    ).toEqual({
      output_type: 'display_data',
      data: { 'text/plain': 'x' },
      metadata: {}
    });
    expect(outputOf(message('status', { execution_state: 'busy' }))).toBeNull();
  });
});

/** A kernel that answers one execute request with the messages given. */
function fakeKernel(
  messages: KernelMessage.IIOPubMessage[],
  status: 'ok' | 'error'
): { kernel: Kernel.IKernelConnection; sent: unknown[] } {
  const sent: unknown[] = [];
  const kernel = {
    requestExecute: (content: unknown) => {
      sent.push(content);
      const future: any = { onIOPub: null };
      future.done = Promise.resolve().then(() => {
        for (const msg of messages) {
          future.onIOPub?.(msg);
        }
        return { content: { status } };
      });
      return future;
    }
  } as unknown as Kernel.IKernelConnection;
  return { kernel, sent };
}

describe('running it in the kernel', () => {
  it('sends the code without touching the history, and keeps what it printed', async () => {
    const { kernel, sent } = fakeKernel(
      [
        message('status', { execution_state: 'busy' }),
        message('stream', { name: 'stdout', text: 'cellpipe: loaded x\n' })
      ],
      'ok'
    );

    const result = await runDebug(kernel, RUN, 'break it');

    expect(sent).toEqual([
      {
        code: debugCode(RUN, 'break it'),
        silent: false,
        store_history: false,
        allow_stdin: false,
        stop_on_error: false
      }
    ]);
    expect(result).toEqual({
      status: 'ok',
      outputs: [
        { output_type: 'stream', name: 'stdout', text: 'cellpipe: loaded x\n' }
      ]
    });
  });

  it('follows each step debugged; no kernel is said, not thrown', async () => {
    const runs = new DebugRuns();
    const seen: boolean[] = [];
    runs.changed.connect(() =>
      seen.push(runs.get(RUN, 'train')?.running ?? false)
    );

    const none = await runs.start(null, RUN, 'train');
    expect(none.running).toBe(false);
    expect(none.error).toMatch(/no kernel running/);
    expect(runs.get(RUN, 'train')?.error).toMatch(/no kernel running/);

    const { kernel } = fakeKernel(
      [
        message('error', {
          ename: 'UsageError',
          evalue: 'no run',
          traceback: []
        })
      ],
      'error'
    );
    const failed = await runs.start(kernel, RUN, 'train');
    expect(failed.magic).toBe(`%cellpipe debug ${RUN} "train"`);
    expect(failed.result?.status).toBe('error');
    expect(failed.result?.outputs[0]).toMatchObject({ ename: 'UsageError' });
    expect(seen).toEqual([false, true, false]); // said, then under way, then done

    const refused = await runs.start(kernel, 'not a run', 'train');
    expect(refused.error).toMatch(/not a run id/);
    expect(runs.get(RUN, 'other')).toBeNull();
  });
});
