/**
 * A JupyterLab notebook as the models see it (INotebookSource), and the cells' step marks:
 * the coloured edge, the step's name and the compile problems of each cell.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IObservableList } from '@jupyterlab/observables';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { PipelineModel, INotebookSource, RunsModel } from './model';
import {
  cellLinks,
  failedCellIndex,
  forPeople,
  ICellInfo,
  ICellPlace,
  placeLabel,
  stepColor
} from './steps';
import { IDiagnostic, IRun } from './tokens';

/** Goes to cell N (counting from 1) of the notebook a message is about. */
export type CellOpener = (cell: number) => void;

/** Text with each `cell N` in it a button that opens the cell. */
export function linkedText(text: string, open: CellOpener | null): Node[] {
  return cellLinks(text).map(part => {
    if (typeof part === 'string' || !open) {
      return document.createTextNode(
        typeof part === 'string' ? part : part.text
      );
    }
    const link = document.createElement('button');
    link.type = 'button';
    link.className = 'cp-CellLink';
    link.textContent = part.text;
    link.title = `Go to ${part.text} of the notebook`;
    link.addEventListener('click', event => {
      event.stopPropagation();
      open(part.cell);
    });
    return link;
  });
}

/** Where the newest run failed: the cell (0-based index), its step and the error. */
export interface IFailure {
  runId: string;
  step: string;
  cellIndex: number | null;
  error: string;
}

/** The failed steps of a run, each with the cell its error points at. */
export function failuresOf(run: IRun | null | undefined): IFailure[] {
  if (!run || run.status !== 'Failed') {
    return [];
  }
  return Object.entries(run.steps)
    .filter(([, step]) => step.status === 'Failed' && step.error)
    .map(([name, step]) => ({
      runId: run.run_id,
      step: name,
      cellIndex: failedCellIndex(step.error),
      error: step.error ?? ''
    }));
}

/** The tags of a cell model (a copy), [] when it has none. */
export function cellTags(cell: ICellModel): string[] {
  const tags = cell.getMetadata('tags');
  return Array.isArray(tags)
    ? tags.filter((tag): tag is string => typeof tag === 'string')
    : [];
}

/** Set a cell's tags; an empty list removes the key, as JupyterLab's tag editor does. */
export function setCellTags(cell: ICellModel, tags: string[]): void {
  if (tags.length) {
    cell.setMetadata('tags', tags);
  } else {
    cell.deleteMetadata('tags');
  }
}

/** A NotebookPanel's notebook, as the models need it. */
export class PanelSource implements INotebookSource, IDisposable {
  constructor(readonly panel: NotebookPanel) {
    const model = panel.context.model;
    model.contentChanged.connect(this._emit, this);
    model.cells.changed.connect(this._onCellsChanged, this);
    for (const cell of model.cells) {
      cell.metadataChanged.connect(this._emit, this);
    }
    panel.context.pathChanged.connect(this._emit, this);
  }

  get path(): string {
    return this.panel.context.localPath;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  content(): unknown {
    return this.panel.context.model.toJSON();
  }

  cells(): ICellInfo[] {
    const cells: ICellInfo[] = [];
    for (const cell of this.panel.context.model.cells) {
      cells.push({
        id: cell.id,
        type: cell.type,
        tags: cellTags(cell),
        source: cell.sharedModel.getSource()
      });
    }
    return cells;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    Signal.clearData(this);
  }

  private _onCellsChanged(
    _: unknown,
    change: IObservableList.IChangedArgs<ICellModel>
  ): void {
    for (const cell of change.newValues) {
      cell.metadataChanged.connect(this._emit, this);
    }
    this._emit();
  }

  private _emit(): void {
    if (!this._isDisposed) {
      this._changed.emit();
    }
  }

  private _isDisposed = false;
  private _changed = new Signal<this, void>(this);
}

const IN_PIPELINE = 'cp-Cell-inPipeline';
const BEGINS = 'cp-Cell-begins';
const HAS_ERROR = 'cp-Cell-hasError';
const FAILED = 'cp-Cell-failed';
const LABEL = 'cp-CellLabel';
const PROBLEMS = 'cp-CellProblems';
const FAILURE = 'cp-CellFailure';

/**
 * Marks each cell with its step: a coloured left edge and the cell's number and step's name,
 * the compile problems that concern it, and, when the newest run failed in it, a red edge and
 * the error, under it (each `cell N` a link). The marks live in the cell's footer (a leaf
 * widget), so the cell's own layout is never disturbed.
 */
export class CellDecorator implements IDisposable {
  constructor(
    readonly panel: NotebookPanel,
    readonly pipeline: PipelineModel,
    readonly runs: RunsModel | null = null,
    /** Reads a failed step's log (its traceback names the cell that raised). */
    readonly stepLog:
      ((runId: string, step: string) => Promise<string>) | null = null
  ) {
    pipeline.changed.connect(this._schedule, this);
    runs?.changed.connect(this._schedule, this);
    panel.content.model?.cells.changed.connect(this._schedule, this);
    this._schedule();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Mark every cell now. */
  decorate(): void {
    this._frame = 0;
    if (this._isDisposed || this.panel.isDisposed) {
      return;
    }
    const { membership } = this.pipeline;
    const places = new Map(membership.cells.map(place => [place.id, place]));
    const problems = this.pipeline.problemsByCell;
    const byIndex = new Map<number, IDiagnostic[]>();
    for (const problem of [
      ...(this.pipeline.result?.errors ?? []),
      ...(this.pipeline.result?.warnings ?? [])
    ]) {
      if (!problem.cell_id && problem.cell_index !== null) {
        byIndex.set(problem.cell_index, [
          ...(byIndex.get(problem.cell_index) ?? []),
          problem
        ]);
      }
    }
    const failures = new Map<number, IFailure[]>();
    for (const found of failuresOf(this.runs?.runs[0])) {
      const failure = this._withTraceback(found);
      const index =
        failure.cellIndex ??
        this.panel.content.widgets.findIndex(
          cell => places.get(cell.model.id)?.steps[0] === failure.step
        );
      failures.set(index, [...(failures.get(index) ?? []), failure]);
    }
    this.panel.content.widgets.forEach((cell, index) => {
      const id = cell.model.id;
      this._mark(
        cell,
        index,
        places.get(id) ?? null,
        membership.steps,
        problems.get(id) ?? byIndex.get(index) ?? []
      );
      this._markFailure(cell, failures.get(index) ?? []);
    });
  }

  /**
   * The failure with its traceback, once the step's log is read (the run record keeps only
   * the error's last line): the traceback's notebook frame says which cell raised.
   */
  private _withTraceback(failure: IFailure): IFailure {
    const key = `${failure.runId}\u0000${failure.step}`;
    if (!this._tracebacks.has(key) && this.stepLog) {
      this._tracebacks.set(key, null);
      this.stepLog(failure.runId, failure.step)
        .then(text => {
          this._tracebacks.set(key, tracebackOf(text));
          this._schedule();
        })
        .catch(() => undefined); // the record's error is shown without it
    }
    const traceback = this._tracebacks.get(key);
    if (!traceback) {
      return failure;
    }
    return {
      ...failure,
      error: traceback,
      cellIndex: failedCellIndex(traceback) ?? failure.cellIndex
    };
  }

  /** Make cell N (counting from 1) the active cell and show it. */
  goToCell(cell: number): void {
    const notebook = this.panel.content;
    if (cell < 1 || cell > notebook.widgets.length) {
      return;
    }
    notebook.activeCellIndex = cell - 1;
    void notebook.scrollToItem(cell - 1, 'smart');
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    if (this._frame) {
      cancelAnimationFrame(this._frame);
    }
    this.pipeline.changed.disconnect(this._schedule, this);
    this.runs?.changed.disconnect(this._schedule, this);
    if (!this.panel.isDisposed) {
      this.panel.content.model?.cells.changed.disconnect(this._schedule, this);
      this.panel.content.widgets.forEach((cell, index) => {
        this._mark(cell, index, null, [], []);
        this._markFailure(cell, []);
      });
    }
  }

  private _schedule(): void {
    if (!this._frame && !this._isDisposed) {
      this._frame = requestAnimationFrame(() => this.decorate());
    }
  }

  /** The newest run's failure in this cell: a red edge, and the error under the cell. */
  private _markFailure(cell: Cell, failures: IFailure[]): void {
    cell.node.classList.toggle(FAILED, failures.length > 0);
    const footer = cell.node.querySelector(':scope > .jp-Cell-footer');
    if (!footer) {
      return; // marked once rendered (_mark waits for it)
    }
    let box = footer.querySelector<HTMLElement>(`:scope > .${FAILURE}`);
    if (!failures.length) {
      box?.remove();
      return;
    }
    const key = JSON.stringify(failures);
    if (box?.dataset.key === key) {
      return;
    }
    if (!box) {
      box = document.createElement('div');
      box.className = FAILURE;
      box.setAttribute('role', 'alert');
      footer.appendChild(box);
    }
    box.dataset.key = key;
    const parts = failures.map(failure => {
      const item = document.createElement('details');
      const summary = document.createElement('summary');
      const lines = failure.error.trim().split('\n');
      summary.append(
        `Run ${failure.runId} failed here, in step ${failure.step}: `,
        ...linkedText(lines[lines.length - 1], n => this.goToCell(n))
      );
      const trace = document.createElement('pre');
      trace.className = 'cp-CellTraceback';
      trace.append(...linkedText(failure.error, n => this.goToCell(n)));
      item.append(summary, trace);
      return item;
    });
    box.replaceChildren(...parts);
  }

  private _mark(
    cell: Cell,
    index: number,
    place: ICellPlace | null,
    steps: ReadonlyArray<string>,
    problems: IDiagnostic[]
  ): void {
    const node = cell.node;
    node.dataset.cpCellId = cell.model.id;
    const label = place ? placeLabel(place) : '';
    node.classList.toggle(IN_PIPELINE, !!label);
    node.classList.toggle(BEGINS, !!place?.begins);
    node.classList.toggle(
      HAS_ERROR,
      problems.some(problem => isError(problem, this.pipeline))
    );
    if (label && place) {
      node.dataset.cellpipeRole = place.role ?? '';
      node.dataset.cellpipeStep = place.steps[0] ?? '';
      const color =
        place.role === 'step'
          ? `var(--cp-step-color-${stepColor(place.steps[0], steps)})`
          : 'var(--cp-role-color)';
      node.style.setProperty('--cp-cell-color', color);
    } else {
      delete node.dataset.cellpipeRole;
      delete node.dataset.cellpipeStep;
      node.style.removeProperty('--cp-cell-color');
    }
    const footer = cell.node.querySelector(':scope > .jp-Cell-footer');
    if (!footer) {
      // Cells out of view are rendered lazily: mark this one once it is.
      if (!this._waiting.has(cell)) {
        this._waiting.add(cell);
        void cell.ready.then(() => this._schedule());
      }
      return;
    }
    let labelNode = footer.querySelector<HTMLElement>(`:scope > .${LABEL}`);
    if (label) {
      if (!labelNode) {
        labelNode = document.createElement('div');
        labelNode.className = LABEL;
        footer.appendChild(labelNode);
      }
      const text = `cell ${index + 1} · ${place?.role === 'step' ? `step: ${label}` : label}`;
      if (labelNode.textContent !== text) {
        labelNode.textContent = text;
      }
      labelNode.title =
        place?.role === 'step'
          ? `This cell is part of step ${label} (cellpipe)`
          : `This cell is part of the pipeline's ${label} (cellpipe)`;
    } else {
      labelNode?.remove();
    }
    let list = footer.querySelector<HTMLElement>(`:scope > .${PROBLEMS}`);
    if (!problems.length) {
      list?.remove();
      return;
    }
    if (!list) {
      list = document.createElement('ul');
      list.className = PROBLEMS;
      list.setAttribute('aria-label', 'cellpipe compile problems of this cell');
      footer.appendChild(list);
    }
    const items = problems.map(problem => {
      const error = isError(problem, this.pipeline);
      const item = document.createElement('li');
      item.className = error ? 'cp-Problem-error' : 'cp-Problem-warning';
      item.append(
        `${error ? 'error' : 'warning'}: `,
        ...linkedText(forPeople(problem), n => this.goToCell(n))
      );
      return item;
    });
    if (
      list.children.length !== items.length ||
      items.some(
        (item, i) => list!.children[i].textContent !== item.textContent
      )
    ) {
      list.replaceChildren(...items);
    }
  }

  private _frame = 0;
  private _isDisposed = false;
  private _waiting = new WeakSet<Cell>();
  private _tracebacks = new Map<string, string | null>();
}

/** The last Python traceback in a step's log, else null. */
export function tracebackOf(log: string): string | null {
  const start = log.lastIndexOf('Traceback (most recent call last)');
  return start < 0 ? null : log.slice(start).trim();
}

function isError(problem: IDiagnostic, pipeline: PipelineModel): boolean {
  return pipeline.result?.errors.includes(problem) ?? false;
}
