/**
 * A JupyterLab notebook as the models see it (INotebookSource), and the cells' step marks:
 * the coloured edge, the step's name and the compile problems of each cell.
 */
import { Cell, ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { IObservableList } from '@jupyterlab/observables';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { PipelineModel, INotebookSource } from './model';
import {
  forPeople,
  ICellInfo,
  ICellPlace,
  placeLabel,
  stepColor
} from './steps';
import { IDiagnostic } from './tokens';

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
const LABEL = 'cp-CellLabel';
const PROBLEMS = 'cp-CellProblems';

/**
 * Marks each cell with its step: a coloured left edge and the step's name, and the compile
 * problems that concern it, under it. The marks live in the cell's footer (a leaf widget), so
 * the cell's own layout is never disturbed.
 */
export class CellDecorator implements IDisposable {
  constructor(
    readonly panel: NotebookPanel,
    readonly pipeline: PipelineModel
  ) {
    pipeline.changed.connect(this._schedule, this);
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
    this.panel.content.widgets.forEach((cell, index) => {
      const id = cell.model.id;
      this._mark(
        cell,
        places.get(id) ?? null,
        membership.steps,
        problems.get(id) ?? byIndex.get(index) ?? []
      );
    });
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
    if (!this.panel.isDisposed) {
      this.panel.content.model?.cells.changed.disconnect(this._schedule, this);
      for (const cell of this.panel.content.widgets) {
        this._mark(cell, null, [], []);
      }
    }
  }

  private _schedule(): void {
    if (!this._frame && !this._isDisposed) {
      this._frame = requestAnimationFrame(() => this.decorate());
    }
  }

  private _mark(
    cell: Cell,
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
      const text = place?.role === 'step' ? `step: ${label}` : label;
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
      item.textContent = `${error ? 'error' : 'warning'}: ${forPeople(problem)}`;
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
}

function isError(problem: IDiagnostic, pipeline: PipelineModel): boolean {
  return pipeline.result?.errors.includes(problem) ?? false;
}
