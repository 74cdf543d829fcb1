/**
 * A step's log (or the run's own) in a main-area panel, refreshed while the step runs.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Poll } from '@lumino/polling';
import { refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { CellPipeClient } from '../api';
import { errorMessage } from '../model';
import { IRunLogs } from '../tokens';
import { isFinished, VocabularySource } from '../vocabulary';

export class LogView extends Widget {
  constructor() {
    super();
    this.addClass('cp-LogView');
    this._header = document.createElement('div');
    this._header.className = 'cp-LogHeader';
    this._header.setAttribute('role', 'status');
    this._pre = document.createElement('pre');
    this._pre.className = 'cp-LogText';
    this._pre.tabIndex = 0;
    this.node.append(this._header, this._pre);
  }

  showLogs(logs: IRunLogs): void {
    const what = logs.step ? `step ${logs.step}` : 'the run';
    const source =
      logs.source === null
        ? 'no log yet'
        : logs.source === 'report'
          ? 'what its cells printed'
          : `${logs.source} log`;
    this._header.textContent =
      `Run ${logs.run_id}, ${what}: ${logs.status}${logs.cached ? ' (cached)' : ''} · ${source}` +
      (logs.truncated ? ' · the last MiB' : '');
    const atBottom =
      this._pre.scrollTop + this._pre.clientHeight >=
      this._pre.scrollHeight - 4;
    this._pre.textContent = logs.text;
    if (atBottom) {
      this._pre.scrollTop = this._pre.scrollHeight;
    }
  }

  showError(message: string): void {
    this._header.textContent = message;
  }

  private _header: HTMLElement;
  private _pre: HTMLElement;
}

/**
 * Open the log of `step` (null: the run's own) of a run, in a panel that follows it until the
 * server's vocabulary says its status is final.
 */
export function createLogPanel(
  client: CellPipeClient,
  runId: string,
  step: string | null,
  vocabulary: VocabularySource
): MainAreaWidget<LogView> {
  const content = new LogView();
  const panel = new MainAreaWidget({ content });
  panel.id = `cellpipe-log-${runId}-${step ?? 'run'}`.replace(/[^\w-]/g, '_');
  panel.title.label = step ? `Log: ${step}` : `Log: run ${runId}`;
  panel.title.caption = `cellpipe run ${runId}${step ? `, step ${step}` : ''}`;
  panel.title.closable = true;
  const load = async (): Promise<IRunLogs | null> => {
    try {
      const logs = await client.logs(runId, step);
      content.showLogs(logs);
      if (isFinished(vocabulary(), logs.status)) {
        poll.stop();
      }
      return logs;
    } catch (error) {
      content.showError(errorMessage(error));
      throw error;
    }
  };
  const poll = new Poll({
    auto: true,
    factory: load,
    frequency: { interval: 1500, backoff: true, max: 15000 },
    name: `cellpipe:log:${runId}:${step ?? ''}`,
    standby: 'when-hidden'
  });
  panel.toolbar.addItem(
    'refresh',
    new ToolbarButton({
      icon: refreshIcon,
      tooltip: 'Reload the log',
      onClick: () => void poll.refresh()
    })
  );
  panel.disposed.connect(() => poll.dispose());
  return panel;
}
