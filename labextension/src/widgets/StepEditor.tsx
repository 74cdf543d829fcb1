/**
 * The step editor: what the active cell is in the pipeline, written as plain cell tags.
 */
import { Button, HTMLSelect, InputGroup } from '@jupyterlab/ui-components';
import * as React from 'react';

import { acyclicCandidates, ICellPlace } from '../steps';
import {
  carriesAfter,
  carriesStepSettings,
  CellRole,
  changeRole,
  CELLPIPE_DIALECT,
  ICellSettings,
  ITagDialect,
  readCellSettings,
  readStepLine,
  ROLE_LABELS,
  validateSettings,
  writeCellTags
} from '../tags';
import { IGpuType } from '../tokens';

export interface IStepEditorProps {
  /** The active cell: null when no notebook or cell is active. */
  cell: {
    id: string;
    index: number;
    type: string;
    tags: ReadonlyArray<string>;
    source: string;
  } | null;
  /** Where the cell stands now (from the tags of every cell). */
  place: ICellPlace | null;
  /** The notebook's steps, in order. */
  steps: ReadonlyArray<string>;
  gpuTypes: ReadonlyArray<IGpuType>;
  /** Each step's `after:` steps, as the tags say them (to offer only what makes no cycle). */
  graph?: ReadonlyMap<string, ReadonlyArray<string>>;
  /** How the notebook spells its tags: Apply writes in the same dialect. */
  dialect?: ITagDialect;
  /**
   * The step above the cell, when the notebook orders its steps with `after:`: a new step
   * starts after it.
   */
  stepAbove?: string | null;
  /** Write the cell's new tags. */
  onApply: (cellId: string, tags: string[]) => void;
}

interface IStepEditorState {
  key: string;
  draft: ICellSettings;
}

const ROLES = Object.keys(ROLE_LABELS) as CellRole[];

function keyOf(props: IStepEditorProps): string {
  const cell = props.cell;
  return cell ? `${cell.id}\u0000${JSON.stringify(cell.tags)}` : '';
}

export class StepEditor extends React.Component<
  IStepEditorProps,
  IStepEditorState
> {
  constructor(props: IStepEditorProps) {
    super(props);
    this.state = StepEditor._fresh(props);
  }

  /** A new cell, or the same cell's tags changed elsewhere: start from its tags. */
  static getDerivedStateFromProps(
    props: IStepEditorProps,
    state: IStepEditorState
  ): IStepEditorState | null {
    return keyOf(props) === state.key ? null : StepEditor._fresh(props);
  }

  private static _fresh(props: IStepEditorProps): IStepEditorState {
    const cell = props.cell;
    return {
      key: keyOf(props),
      draft: readCellSettings(cell ? cell.tags : [])
    };
  }

  render(): React.ReactElement {
    const { cell } = this.props;
    if (!cell) {
      return (
        <p className="cp-Empty">Select a cell of a notebook to set its step.</p>
      );
    }
    if (cell.type !== 'code') {
      return (
        <p className="cp-Empty">
          Cell {cell.index + 1} is a {cell.type} cell: only code cells are part
          of the pipeline.
        </p>
      );
    }
    const stepLine = readStepLine(cell.source);
    if (stepLine) {
      return (
        <div className="cp-StepEditor">
          <p className="cp-Note">
            Cell {cell.index + 1} sets its step in its first line (
            <code>%%step</code>): it means the tags{' '}
            <code>{stepLine.tags.join(' ')}</code>. Edit that line, or remove it
            to edit the cell here.
          </p>
        </div>
      );
    }
    const { draft } = this.state;
    const current = readCellSettings(cell.tags);
    const dialect = this.props.dialect ?? CELLPIPE_DIALECT;
    const newTags = writeCellTags(cell.tags, draft, dialect);
    const changed = JSON.stringify(newTags) !== JSON.stringify(cell.tags);
    const problems = validateSettings(draft);
    return (
      <form
        className="cp-StepEditor"
        aria-label={`Step editor for cell ${cell.index + 1}`}
        onSubmit={event => {
          event.preventDefault();
          this._apply();
        }}
      >
        <div className="cp-Where">{this._where(current)}</div>
        <div className="cp-Field">
          <label htmlFor="cp-role">Role</label>
          <HTMLSelect
            id="cp-role"
            aria-label="Cell role"
            value={draft.role}
            onChange={event => {
              const role = event.currentTarget.value as CellRole;
              this.setState(state => ({
                draft: changeRole(
                  state.draft,
                  role,
                  this.props.stepAbove ?? null
                )
              }));
            }}
            options={ROLES.map(role => ({
              value: role,
              label: ROLE_LABELS[role]
            }))}
          />
        </div>
        {draft.role === 'step' && (
          <div className="cp-Field">
            <label htmlFor="cp-step-name">Step name</label>
            <InputGroup
              id="cp-step-name"
              aria-label="Step name"
              placeholder="e.g. train"
              value={draft.names[0] ?? ''}
              onChange={event =>
                this._set({
                  names: [event.currentTarget.value, ...draft.names.slice(1)]
                })
              }
            />
          </div>
        )}
        {carriesStepSettings(draft.role) && this._stepSettings(draft)}
        {problems.length > 0 && (
          <ul className="cp-FormProblems" role="alert">
            {problems.map(problem => (
              <li key={problem}>{problem}</li>
            ))}
          </ul>
        )}
        <div className="cp-Tags" aria-live="polite">
          Tags: <code>{newTags.length ? newTags.join(' ') : '(none)'}</code>
        </div>
        <div className="cp-Buttons">
          <Button
            type="submit"
            className="jp-mod-accept"
            disabled={!changed || problems.length > 0}
            aria-label="Apply the step settings to the cell's tags"
          >
            Apply
          </Button>
          <Button
            type="button"
            minimal
            disabled={!changed}
            onClick={() => this.setState(StepEditor._fresh(this.props))}
          >
            Reset
          </Button>
        </div>
      </form>
    );
  }

  private _where(current: ICellSettings): string {
    const { cell, place } = this.props;
    const number = `Cell ${cell!.index + 1}`;
    if (!place || place.role === null) {
      return `${number} is not part of a step yet.`;
    }
    if (place.role === 'step') {
      const steps = place.steps.join(', ');
      return current.role === 'step'
        ? `${number} begins step ${steps}.`
        : `${number} continues step ${steps}.`;
    }
    if (place.role === 'skip') {
      return `${number} is skipped.`;
    }
    return current.role === 'continue'
      ? `${number} continues the ${place.role} cell above.`
      : `${number} is the pipeline's ${place.role}.`;
  }

  private _stepSettings(draft: ICellSettings): React.ReactElement {
    // the graph without this cell's own after: tags (the draft replaces them)
    const graph = new Map(this.props.graph ?? []);
    for (const name of draft.names) {
      graph.delete(name.trim());
    }
    const candidates = acyclicCandidates(draft.names, this.props.steps, graph);
    const unknown = draft.after.filter(name => !candidates.includes(name));
    const gpuTypes = this.props.gpuTypes.filter(type => type.name);
    if (draft.gpuType && !gpuTypes.some(type => type.name === draft.gpuType)) {
      gpuTypes.push({
        name: draft.gpuType,
        display_name: draft.gpuType,
        resource: ''
      });
    }
    return (
      <>
        {carriesAfter(draft.role) && this._after(draft, candidates, unknown)}
        {this._resources(draft, gpuTypes)}
      </>
    );
  }

  /** "Runs after": only the steps that make no cycle; a step no more offered says why. */
  private _after(
    draft: ICellSettings,
    candidates: string[],
    unknown: string[]
  ): React.ReactElement {
    const exists = new Set(this.props.steps);
    return (
      <fieldset className="cp-Field cp-After">
        <legend>Runs after</legend>
        {candidates.length + unknown.length === 0 && (
          <span className="cp-Hint">no other steps yet</span>
        )}
        {[...candidates, ...unknown].map(name => (
          <label key={name} className="cp-Check">
            <input
              type="checkbox"
              checked={draft.after.includes(name)}
              aria-label={`Runs after step ${name}`}
              onChange={event => {
                const after = event.currentTarget.checked
                  ? [...draft.after, name]
                  : draft.after.filter(other => other !== name);
                this._set({ after });
              }}
            />
            {name}
            {unknown.includes(name) && (
              <span className="cp-Hint">
                {exists.has(name) ? ' (makes a cycle)' : ' (no such step)'}
              </span>
            )}
          </label>
        ))}
      </fieldset>
    );
  }

  private _resources(
    draft: ICellSettings,
    gpuTypes: IGpuType[]
  ): React.ReactElement {
    return (
      <>
        <div className="cp-Field cp-Row">
          <div>
            <label htmlFor="cp-gpu-count">GPUs</label>
            <input
              id="cp-gpu-count"
              className="jp-mod-styled cp-Number"
              type="number"
              min={0}
              max={64}
              step={1}
              aria-label="Number of GPUs"
              value={draft.gpuCount}
              onChange={event =>
                this._set({
                  gpuCount: parseInt(event.currentTarget.value || '0', 10)
                })
              }
            />
          </div>
          <div className="cp-Grow">
            <label htmlFor="cp-gpu-type">GPU type</label>
            <HTMLSelect
              id="cp-gpu-type"
              aria-label="GPU type"
              disabled={draft.gpuCount < 1}
              value={draft.gpuType}
              onChange={event =>
                this._set({ gpuType: event.currentTarget.value })
              }
              options={[
                { value: '', label: 'any type' },
                ...gpuTypes.map(type => ({
                  value: type.name ?? '',
                  label:
                    type.display_name +
                    (typeof type.free === 'number'
                      ? ` (${type.free} free)`
                      : '')
                }))
              ]}
            />
          </div>
        </div>
        <div className="cp-Field cp-Row">
          <div>
            <label htmlFor="cp-cpu">CPU</label>
            <InputGroup
              id="cp-cpu"
              aria-label="CPU"
              placeholder="e.g. 500m"
              value={draft.cpu}
              onChange={event => this._set({ cpu: event.currentTarget.value })}
            />
          </div>
          <div>
            <label htmlFor="cp-memory">Memory</label>
            <InputGroup
              id="cp-memory"
              aria-label="Memory"
              placeholder="e.g. 4Gi"
              value={draft.memory}
              onChange={event =>
                this._set({ memory: event.currentTarget.value })
              }
            />
          </div>
        </div>
        <div className="cp-Field">
          <label htmlFor="cp-image">Image</label>
          <InputGroup
            id="cp-image"
            aria-label="Base image"
            placeholder="the notebook's base image"
            value={draft.image}
            onChange={event => this._set({ image: event.currentTarget.value })}
          />
        </div>
      </>
    );
  }

  private _set(change: Partial<ICellSettings>): void {
    this.setState(state => ({ draft: { ...state.draft, ...change } }));
  }

  private _apply(): void {
    const { cell } = this.props;
    if (!cell || validateSettings(this.state.draft).length) {
      return;
    }
    this.props.onApply(
      cell.id,
      writeCellTags(
        cell.tags,
        this.state.draft,
        this.props.dialect ?? CELLPIPE_DIALECT
      )
    );
  }
}
