/**
 * The cellpipe sidebar (left area): for the notebook in focus, its active cell's step, its
 * pipeline (DAG and problems) and its runs, with the toolbar's Run, Build and Download.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  MainAreaWidget,
  Notification,
  ReactWidget,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import {
  buildIcon,
  downloadIcon,
  launchIcon,
  refreshIcon,
  runIcon,
  SidePanel,
  ToolbarButton
} from '@jupyterlab/ui-components';
import { ISignal, Signal } from '@lumino/signaling';
import { AccordionPanel } from '@lumino/widgets';
import * as React from 'react';

import { executedNotebookPath } from '../drive';
import { errorMessage } from '../model';
import { cellTags, setCellTags } from '../notebook';
import { stepAbove, tagGraph, usesAfter } from '../steps';
import { detectDialect } from '../tags';
import { CellPipeContext, NotebookSession } from '../session';
import { IDiagnostic, IRun } from '../tokens';
import { isClusterEngine, isFinished, isTrainingEngine } from '../vocabulary';
import { pipelineIcon } from './icons';
import { createLogPanel, LogView } from './LogPanel';
import { createPipelinePanel } from './PipelineGraph';
import { PipelineView } from './PipelineView';
import {
  availableEngines,
  compiledFor,
  IRunDialogValue,
  RunDialogBody
} from './RunDialog';
import { RunsView } from './RunsView';
import { ServeButton, serveRun } from './ServeView';
import { StepEditor } from './StepEditor';
import { tuneNotebook } from './TuneDialog';

/** A section of the sidebar: re-rendered whenever the sidebar says something changed. */
abstract class Section extends ReactWidget {
  constructor(
    readonly sidebar: CellPipeSidebar,
    label: string,
    className: string
  ) {
    super();
    this.title.label = label;
    this.addClass('cp-Section');
    this.addClass(className);
    sidebar.changed.connect(() => this.update(), this);
  }
}

class HeaderSection extends ReactWidget {
  constructor(readonly sidebar: CellPipeSidebar) {
    super();
    this.addClass('cp-Header');
    sidebar.changed.connect(() => this.update(), this);
  }

  protected render(): React.ReactElement {
    const session = this.sidebar.session;
    const error = this.sidebar.context.error;
    return (
      <>
        <h2 className="cp-Title">
          <pipelineIcon.react tag="span" className="cp-TitleIcon" />
          cellpipe
        </h2>
        <div className="cp-Notebook" title={session?.source.path}>
          {session ? session.source.path : 'No notebook in focus'}
        </div>
        {error && (
          <div className="cp-Status cp-mod-error" role="alert">
            {error}
          </div>
        )}
      </>
    );
  }
}

class CellSection extends Section {
  constructor(sidebar: CellPipeSidebar) {
    super(sidebar, 'Cell', 'cp-CellSection');
  }

  private _cellId: string | undefined;

  protected render(): React.ReactElement {
    const { session, activeCell } = this.sidebar;
    const model = activeCell?.model ?? null;
    const cells = session?.panel.context.model.cells;
    let index = -1;
    if (model && cells) {
      for (let i = 0; i < cells.length; i++) {
        if (cells.get(i).id === model.id) {
          index = i;
          break;
        }
      }
    }
    const cell =
      session && model && index >= 0
        ? {
            id: model.id,
            index,
            type: model.type,
            tags: cellTags(model),
            source: model.sharedModel.getSource()
          }
        : null;
    if (cell?.id !== this._cellId) {
      this._cellId = cell?.id;
      this.node.scrollTop = 0; // another cell: its editor from the top
    }
    const membership = session?.pipeline.membership;
    const compiled = session?.pipeline.result?.steps.map(step => step.name);
    const steps = [
      ...new Set([...(membership?.steps ?? []), ...(compiled ?? [])])
    ];
    const infos = session?.source.cells() ?? [];
    return (
      <StepEditor
        cell={cell}
        place={
          cell ? (membership?.cells.find(p => p.id === cell.id) ?? null) : null
        }
        steps={steps}
        graph={tagGraph(infos)}
        dialect={detectDialect(infos.map(info => info.tags))}
        stepAbove={
          cell && membership && usesAfter(infos)
            ? stepAbove(membership, cell.id)
            : null
        }
        gpuTypes={this.sidebar.context.gpus?.types ?? []}
        onApply={(cellId, tags) => this.sidebar.applyTags(cellId, tags)}
      />
    );
  }
}

class PipelineSection extends Section {
  constructor(sidebar: CellPipeSidebar) {
    super(sidebar, 'Pipeline', 'cp-PipelineSection');
  }

  protected render(): React.ReactElement {
    const session = this.sidebar.session;
    if (!session) {
      return <p className="cp-Empty">Open a notebook to see its pipeline.</p>;
    }
    const { pipeline, runs } = session;
    return (
      <PipelineView
        result={pipeline.result}
        busy={pipeline.busy}
        error={pipeline.error}
        steps={pipeline.membership.steps}
        run={runs.runs[0] ?? null}
        onSelectStep={name => this.sidebar.selectStep(name)}
        onSelectProblem={problem => this.sidebar.selectProblem(problem)}
        onOpenView={() => this.sidebar.openPipelineView()}
      />
    );
  }
}

class RunsSection extends Section {
  constructor(sidebar: CellPipeSidebar) {
    super(sidebar, 'Runs', 'cp-RunsSection');
  }

  protected render(): React.ReactElement {
    const session = this.sidebar.session;
    if (!session) {
      return <p className="cp-Empty">Open a notebook to see its runs.</p>;
    }
    const { runs } = session;
    return (
      <RunsView
        runs={runs.runs}
        busy={runs.busy}
        error={runs.error}
        following={runId => runs.watcher(runId)?.mode ?? null}
        vocabulary={this.sidebar.context.vocabulary}
        onLogs={(run, step) => this.sidebar.openLogs(run, step)}
        onCancel={run => void this.sidebar.cancel(run)}
        onDelete={run => void this.sidebar.remove(run)}
        rendermime={this.sidebar.rendermime}
        executed={run => session.executed.get(run)}
        onOpenNotebook={
          this.sidebar.canOpenNotebooks
            ? run => this.sidebar.openExecuted(run)
            : undefined
        }
        debugState={(run, step) => session.debug.get(run.run_id, step)}
        onDebug={(run, step) => void this.sidebar.debugStep(run, step)}
        onCell={cell => this.sidebar.goToCell(cell)}
        finishedActions={run => (
          <ServeButton
            run={run}
            client={this.sidebar.context.client}
            onServe={(served, models) =>
              void serveRun(
                this.sidebar.app,
                this.sidebar.context.client,
                served,
                models,
                session.panel.id
              )
            }
          />
        )}
      />
    );
  }
}

/** JupyterLab's services the sidebar uses when the app has them. */
export interface ISidebarServices {
  /** Renders the steps' outputs (the notebook's own renderers). */
  rendermime?: IRenderMimeRegistry | null;
  /** Opens a run's executed notebook (read-only, from the `cellpipe-runs` drive). */
  docManager?: IDocumentManager | null;
}

export class CellPipeSidebar extends SidePanel {
  constructor(
    readonly app: JupyterFrontEnd,
    readonly context: CellPipeContext,
    services: ISidebarServices = {}
  ) {
    super();
    this.rendermime = services.rendermime ?? null;
    this._docManager = services.docManager ?? null;
    this.id = 'cellpipe-sidebar';
    this.addClass('cp-Sidebar');
    this.title.icon = pipelineIcon;
    this.title.caption = 'cellpipe: the notebook as a pipeline';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'cellpipe pipeline sidebar');

    this.header.addWidget(new HeaderSection(this));
    this._addButtons();
    this.addWidget(new CellSection(this));
    this.addWidget(new PipelineSection(this));
    this.addWidget(new RunsSection(this));
    // the graph gets the most room; people drag the accordion's handles as they need
    if (this.content instanceof AccordionPanel) {
      this.content.setRelativeSizes([2, 3, 2.5]);
    }
    context.changed.connect(this._onChanged, this);
    this._onChanged();
  }

  /** JupyterLab's renderers, null when the app has none (then no outputs are shown). */
  readonly rendermime: IRenderMimeRegistry | null;

  /** Can a run's executed notebook be opened (the app has a document manager)? */
  get canOpenNotebooks(): boolean {
    return this._docManager !== null;
  }

  /** Emitted when the notebook, its models, the active cell or the configuration change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get session(): NotebookSession | null {
    return this._session;
  }

  set session(session: NotebookSession | null) {
    if (session === this._session) {
      return;
    }
    if (this._session && !this._session.isDisposed) {
      this._session.pipeline.changed.disconnect(this._onChanged, this);
      this._session.runs.changed.disconnect(this._onChanged, this);
      this._session.executed.changed.disconnect(this._onChanged, this);
      this._session.debug.changed.disconnect(this._onChanged, this);
    }
    this._session = session;
    if (session) {
      session.pipeline.changed.connect(this._onChanged, this);
      session.runs.changed.connect(this._onChanged, this);
      session.executed.changed.connect(this._onChanged, this);
      session.debug.changed.connect(this._onChanged, this);
    }
    this._onChanged();
  }

  get activeCell(): Cell | null {
    return this._activeCell;
  }

  set activeCell(cell: Cell | null) {
    this._activeCell = cell;
    this._onChanged();
  }

  /** Write a cell's tags (the step editor's Apply). */
  applyTags(cellId: string, tags: string[]): void {
    const cells = this._session?.panel.context.model.cells;
    if (!cells) {
      return;
    }
    for (const cell of cells) {
      if (cell.id === cellId) {
        setCellTags(cell, tags);
        return;
      }
    }
  }

  /** Make the first cell of a step the active cell (in the notebook in focus by default). */
  selectStep(name: string, session = this._session): void {
    if (!session || session.isDisposed) {
      return;
    }
    const step = session.pipeline.result?.steps.find(s => s.name === name);
    const cellId =
      step?.cell_ids.find(id => id) ??
      session.pipeline.membership.cells.find(p => p.steps.includes(name))?.id;
    if (cellId) {
      this._activate(session, cellId, null);
    }
  }

  /** Make cell N (counting from 1) of the notebook in focus the active cell. */
  goToCell(cell: number): void {
    if (this._session) {
      this._activate(this._session, null, cell - 1);
    }
  }

  /** Make the cell a problem concerns the active cell. */
  selectProblem(problem: IDiagnostic): void {
    if (this._session) {
      this._activate(this._session, problem.cell_id, problem.cell_index);
    }
  }

  /** Compile now, then ask for the engine and parameters, then start the run. */
  async run(engine?: string): Promise<void> {
    const session = this._session;
    if (!session) {
      return;
    }
    const result = await compiledFor(session, 'run');
    if (!result) {
      return;
    }
    const body = new RunDialogBody({
      result,
      config: this.context.config,
      gpus: this.context.gpus,
      settings: this.context.settings,
      engine,
      source: {
        path: session.source.path,
        unsaved: session.panel.context.model.dirty
      }
    });
    const answer = await showDialog<IRunDialogValue>({
      title: `Run ${result.pipeline}`,
      body,
      buttons: [
        Dialog.cancelButton(),
        Dialog.okButton({ label: 'Run', ariaLabel: 'Start the run' })
      ],
      focusNodeSelector: 'select'
    });
    if (!answer.button.accept || !answer.value) {
      return;
    }
    if (answer.value.problems.length) {
      await showErrorMessage(
        'Cannot run the pipeline',
        answer.value.problems.join('\n')
      );
      return;
    }
    try {
      if (answer.value.saveFirst) {
        await session.panel.context.save();
      }
      const started = await session.runs.start({
        ...answer.value.request,
        content: session.source.content()
      });
      for (const warning of started.warnings) {
        Notification.warning(warning.message, { autoClose: 8000 });
      }
      Notification.info(`Run ${started.run_id} started (${started.engine})`, {
        autoClose: 4000
      });
    } catch (error) {
      await showErrorMessage('The run did not start', errorMessage(error));
    }
  }

  /** Tune the parameters: the Tune dialog, then the tune's view (`cellpipe tune`). */
  tune(): Promise<void> {
    return tuneNotebook(this.app, this.context, this._session);
  }

  /** Download the compiled pipeline (KFP v2 YAML). */
  async download(): Promise<void> {
    const session = this._session;
    if (!session) {
      return;
    }
    try {
      const { filename, yaml } = await session.pipeline.pipelineYaml();
      const url = URL.createObjectURL(
        new Blob([yaml], { type: 'application/yaml' })
      );
      const anchor = document.createElement('a');
      anchor.href = url;
      anchor.download = filename;
      document.body.appendChild(anchor);
      anchor.click();
      anchor.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      await showErrorMessage(
        'Cannot download the pipeline',
        errorMessage(error)
      );
    }
  }

  /** Build the notebook's image (offered when the server has the `builds` route). */
  async build(): Promise<void> {
    const session = this._session;
    // The vocabulary says when a build has ended: without it, there is no knowing.
    if (!session || !this.context.vocabulary) {
      return;
    }
    const id = Notification.emit('Building the image…', 'in-progress', {
      autoClose: false
    });
    try {
      let build = await this.context.client.startBuild({
        path: session.source.path,
        content: session.source.content(),
        registry: this.context.settings.registry || undefined
      });
      while (!isFinished(this.context.vocabulary, build.status)) {
        await new Promise(resolve => setTimeout(resolve, 1000));
        build = await this.context.client.getBuild(build.build_id);
        const last = build.progress[build.progress.length - 1];
        Notification.update({
          id,
          message: `Building the image (${build.status})${last ? `: ${last}` : '…'}`,
          type: 'in-progress',
          autoClose: false
        });
      }
      if (build.status === 'Succeeded') {
        const image = String(build.result?.image ?? '');
        const cached = build.result?.cached
          ? ' (unchanged: nothing built)'
          : '';
        Notification.update({
          id,
          message: `Built ${image}${cached}`,
          type: 'success',
          autoClose: 8000
        });
      } else {
        Notification.update({
          id,
          message: `The build failed: ${build.error ?? build.status}`,
          type: 'error',
          autoClose: false
        });
      }
    } catch (error) {
      Notification.update({
        id,
        message: `The build failed: ${errorMessage(error)}`,
        type: 'error',
        autoClose: false
      });
    }
  }

  /** The notebook's pipeline as a graph in the main area, beside the notebook (one per notebook). */
  openPipelineView(): void {
    const session = this._session;
    if (!session) {
      return;
    }
    const id = `cellpipe-pipeline-${session.panel.id}`;
    const existing = Array.from(this.app.shell.widgets('main')).find(
      widget => widget.id === id
    );
    if (existing) {
      this.app.shell.activateById(id);
      return;
    }
    const panel = createPipelinePanel(session, name =>
      this.selectStep(name, session)
    );
    this.app.shell.add(panel, 'main', {
      mode: 'split-right',
      ref: session.panel.id
    });
    this.app.shell.activateById(panel.id);
  }

  /**
   * A step's log (or the run's whole log) in the one log panel, below the notebook the first
   * time, then reused: another log replaces what it shows.
   */
  openLogs(run: IRun, step: string | null): void {
    const session = this._session;
    const goToCell = (cell: number) => {
      if (session && !session.isDisposed) {
        this._activate(session, null, cell - 1);
      }
    };
    if (this._logPanel && !this._logPanel.isDisposed) {
      this._logPanel.content.follow(run.run_id, step, goToCell);
      this.app.shell.activateById(this._logPanel.id);
      return;
    }
    const panel = createLogPanel(
      this.context.client,
      () => this.context.vocabulary
    );
    panel.content.follow(run.run_id, step, goToCell);
    this._logPanel = panel;
    panel.disposed.connect(() => {
      this._logPanel = null;
    });
    this.app.shell.add(panel, 'main', {
      mode: 'split-bottom',
      ref: session?.panel.id
    });
    this.app.shell.activateById(panel.id);
  }

  /**
   * Open the run's executed notebook in JupyterLab, read-only (the `cellpipe-runs` drive),
   * beside the notebook, without a kernel: it is the record of a run, not a notebook to run.
   */
  openExecuted(run: IRun): void {
    const docManager = this._docManager;
    if (!docManager) {
      return;
    }
    let path: string;
    try {
      path = executedNotebookPath(run.run_id);
    } catch (error) {
      void showErrorMessage(
        'Cannot open the executed notebook',
        errorMessage(error)
      );
      return;
    }
    const ref = this._session?.panel.id;
    const widget = docManager.openOrReveal(
      path,
      undefined,
      undefined,
      ref ? { ref, mode: 'tab-after' } : {},
      { shouldStart: false, canStart: false, autoStartDefault: false }
    );
    if (!widget) {
      void showErrorMessage(
        'Cannot open the executed notebook',
        'JupyterLab has no viewer for notebooks here'
      );
      return;
    }
    widget.title.label = `${run.pipeline} · run ${run.run_id}`;
    void widget.context.ready
      .then(() => {
        // Save refuses with JupyterLab's own "Document is read-only"
        widget.context.model.readOnly = true;
      })
      .catch(() => undefined); // JupyterLab has said why it could not load it
  }

  /**
   * "Debug in kernel": `%cellpipe debug RUN "STEP"` in the kernel of the notebook in focus,
   * which loads what the step received; what it printed is shown under the step.
   */
  async debugStep(run: IRun, step: string): Promise<void> {
    const session = this._session;
    if (!session) {
      return;
    }
    const sessionContext = session.panel.sessionContext;
    if (!sessionContext.isReady) {
      await sessionContext.ready;
    }
    const kernel = sessionContext.session?.kernel ?? null;
    await session.debug.start(kernel, run.run_id, step);
  }

  async cancel(run: IRun): Promise<void> {
    try {
      await this._session?.runs.cancel(run.run_id);
    } catch (error) {
      await showErrorMessage('Cannot cancel the run', errorMessage(error));
    }
  }

  async remove(run: IRun): Promise<void> {
    const answer = await showDialog({
      title: 'Delete run',
      body: `Delete run ${run.run_id} and its folder? Cached steps stay.`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await this._session?.runs.remove(run.run_id);
      this._session?.executed.forget(run.run_id);
    } catch (error) {
      await showErrorMessage('Cannot delete the run', errorMessage(error));
    }
  }

  private _activate(
    session: NotebookSession,
    cellId: string | null,
    cellIndex: number | null
  ): void {
    const notebook = session.panel.content;
    let index = -1;
    if (cellId) {
      index = notebook.widgets.findIndex(cell => cell.model.id === cellId);
    }
    if (index < 0 && cellIndex !== null) {
      index = cellIndex;
    }
    if (index < 0 || index >= notebook.widgets.length) {
      return;
    }
    notebook.activeCellIndex = index;
    void notebook.scrollToItem(index, 'smart');
    this.app.shell.activateById(session.panel.id);
  }

  private _addButtons(): void {
    const button = (
      name: string,
      options: ConstructorParameters<typeof ToolbarButton>[0]
    ) => {
      const widget = new ToolbarButton({ ...options });
      this._buttons.set(name, widget);
      this.toolbar.addItem(name, widget);
    };
    button('run', {
      icon: runIcon,
      label: 'Run',
      tooltip: 'Run the pipeline (choose the engine and parameters)',
      onClick: () => void this.run()
    });
    button('tune', {
      label: 'Tune…',
      tooltip: 'Tune the parameters: search their ranges for the best metric',
      onClick: () => void this.tune()
    });
    button('kfp', {
      icon: launchIcon,
      label: 'Kubeflow',
      tooltip: 'Submit the pipeline to Kubeflow Pipelines',
      onClick: () => void this.run(this._pipelineClusterEngine())
    });
    button('training', {
      icon: launchIcon,
      label: 'Training job',
      tooltip: 'Submit a distributed training job',
      onClick: () => void this.run(this._trainingEngine())
    });
    button('build', {
      icon: buildIcon,
      label: 'Build',
      tooltip: "Build the pipeline's image",
      onClick: () => void this.build()
    });
    button('download', {
      icon: downloadIcon,
      tooltip: 'Download the compiled pipeline (KFP v2 YAML)',
      onClick: () => void this.download()
    });
    button('compile', {
      icon: refreshIcon,
      tooltip: 'Compile the notebook now',
      onClick: () => void this._session?.pipeline.compile()
    });
  }

  /** The first engine offered that submits the whole pipeline to a cluster (kfp). */
  private _pipelineClusterEngine(): string | undefined {
    const vocabulary = this.context.vocabulary;
    return availableEngines(this.context.config).find(
      engine =>
        isClusterEngine(vocabulary, engine) &&
        !isTrainingEngine(vocabulary, engine)
    );
  }

  /** The first training engine offered. */
  private _trainingEngine(): string | undefined {
    const vocabulary = this.context.vocabulary;
    return availableEngines(this.context.config).find(engine =>
      isTrainingEngine(vocabulary, engine)
    );
  }

  private _onChanged(): void {
    const has = this._session !== null;
    const show = (name: string, visible: boolean) => {
      const widget = this._buttons.get(name);
      widget?.setHidden(!visible);
      if (widget) {
        widget.enabled = has;
      }
    };
    show('run', true);
    show('tune', true);
    show('kfp', this._pipelineClusterEngine() !== undefined);
    show('training', this._trainingEngine() !== undefined);
    show('build', this.context.can('builds'));
    show('download', true);
    show('compile', true);
    this._changed.emit();
  }

  private _session: NotebookSession | null = null;
  private _logPanel: MainAreaWidget<LogView> | null = null;
  private _docManager: IDocumentManager | null;
  private _activeCell: Cell | null = null;
  private _buttons = new Map<string, ToolbarButton>();
  private _changed = new Signal<this, void>(this);
}
