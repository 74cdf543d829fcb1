/**
 * The one log panel (main area, below the notebook), reused for every log: a step's, or the
 * run's whole log (its own part, then each step's output in order, each under a header), followed
 * while the run goes on. Every `cell N` in it is a link to the cell.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Poll } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import { CellPipeClient } from '../api';
import { errorMessage } from '../model';
import { CellOpener, linkedText } from '../notebook';
import { IRunLogs } from '../tokens';
import { isFinished, VocabularySource } from '../vocabulary';

/** One part of a run's whole log, as GET /runs/ID/logs answers it when it has `sections`. */
interface ILogSection {
  step: string | null;
  header: string;
  text: string;
}

/** The lines that open a run's whole log (what ran where, how it ended), before its sections. */
export function runSummary(text: string): string {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('==> ')) {
      break;
    }
    lines.push(line);
  }
  return lines.join('\n').trim();
}

export class LogView extends Widget {
  constructor(
    private readonly _client: CellPipeClient,
    private readonly _vocabulary: VocabularySource
  ) {
    super();
    this.addClass('cp-LogView');
    this._header = document.createElement('div');
    this._header.className = 'cp-LogHeader';
    this._header.setAttribute('role', 'status');
    this._body = document.createElement('div');
    this._body.className = 'cp-LogBody';
    this._body.tabIndex = 0;
    this.node.append(this._header, this._body);
  }

  /** The run and step shown (step null: the run's whole log). */
  get shown(): { runId: string; step: string | null } | null {
    return this._runId ? { runId: this._runId, step: this._step } : null;
  }

  /** Show this log from now on, following it until its status is final. */
  follow(
    runId: string,
    step: string | null,
    openCell: CellOpener | null
  ): void {
    this._poll?.dispose();
    this._runId = runId;
    this._step = step;
    this._openCell = openCell;
    this._shownText = null;
    this._body.replaceChildren();
    this._header.textContent = 'Loading the log…';
    this.title.label = step ? `Log: ${step}` : `Log: run ${runId}`;
    this.title.caption = `cellpipe run ${runId}${step ? `, step ${step}` : ''}`;
    this._poll = new Poll({
      auto: true,
      factory: () => this._load(runId, step),
      frequency: { interval: 1500, backoff: true, max: 15000 },
      name: `cellpipe:log:${runId}:${step ?? ''}`,
      standby: 'when-hidden'
    });
  }

  /** Load the log again now. */
  refresh(): void {
    void this._poll?.refresh();
  }

  showLogs(logs: IRunLogs): void {
    const what = logs.step ? `step ${logs.step}` : 'the whole run';
    const source =
      logs.source === null
        ? 'no log yet'
        : logs.source === 'report'
          ? 'what its cells printed'
          : logs.source
            ? `${logs.source} log`
            : '';
    this._header.textContent =
      `Run ${logs.run_id}, ${what}: ${logs.status}${logs.cached ? ' (cached)' : ''}` +
      (source ? ` · ${source}` : '') +
      (logs.truncated ? ' · the last MiB' : '');
    const sections = (logs as unknown as { sections?: ILogSection[] }).sections;
    const key = JSON.stringify([logs.text, sections]);
    if (key === this._shownText) {
      return; // unchanged: keep the reader's scroll position and selection
    }
    this._shownText = key;
    const atBottom =
      this._body.scrollTop + this._body.clientHeight >=
      this._body.scrollHeight - 4;
    const parts =
      !logs.step && sections?.length
        ? [this._pre(runSummary(logs.text)), ...this._sections(sections)]
        : [this._pre(logs.text || '(nothing printed yet)')];
    this._body.replaceChildren(...parts);
    if (atBottom) {
      this._body.scrollTop = this._body.scrollHeight;
    }
  }

  showError(message: string): void {
    this._header.textContent = message;
  }

  dispose(): void {
    this._poll?.dispose();
    super.dispose();
  }

  /** Each step's part under its header; the run's own part only when it said something. */
  private _sections(sections: ILogSection[]): HTMLElement[] {
    return sections
      .filter(section => section.step !== null || section.text)
      .map(section => this._section(section));
  }

  private _section(section: ILogSection): HTMLElement {
    const node = document.createElement('section');
    node.className = 'cp-LogSection';
    if (section.step) {
      node.dataset.step = section.step;
    }
    const header = document.createElement('h3');
    header.className = 'cp-LogSectionHeader';
    header.textContent = section.header;
    node.append(header, this._pre(section.text || '(printed nothing)'));
    return node;
  }

  private _pre(text: string): HTMLElement {
    const pre = document.createElement('pre');
    pre.className = 'cp-LogText';
    pre.append(...linkedText(text, this._openCell));
    return pre;
  }

  private async _load(runId: string, step: string | null): Promise<void> {
    try {
      const logs = await this._client.logs(runId, step);
      if (runId !== this._runId || step !== this._step) {
        return; // another log was asked for meanwhile
      }
      this.showLogs(logs);
      if (isFinished(this._vocabulary(), logs.status)) {
        this._poll?.stop();
      }
    } catch (error) {
      this.showError(errorMessage(error));
      throw error;
    }
  }

  private _header: HTMLElement;
  private _body: HTMLElement;
  private _runId: string | null = null;
  private _step: string | null = null;
  private _openCell: CellOpener | null = null;
  private _shownText: string | null = null;
  private _poll: Poll | null = null;
}

/** The log panel: one for the whole app, its log replaced by `content.follow`. */
export function createLogPanel(
  client: CellPipeClient,
  vocabulary: VocabularySource
): MainAreaWidget<LogView> {
  const content = new LogView(client, vocabulary);
  const panel = new MainAreaWidget({ content });
  panel.id = 'cellpipe-log';
  panel.addClass('cp-LogPanel');
  panel.title.closable = true;
  panel.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Reload the log',
      onClick: () => content.refresh()
    })
  );
  return panel;
}
