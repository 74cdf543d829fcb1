/**
 * cellpipe's JupyterLab extension: a left-area sidebar that shows the notebook in focus as a
 * pipeline (step editor, DAG, compile problems on the cells), runs it and follows its runs,
 * shows their outputs (JupyterLab's renderers) and opens their executed notebooks read-only
 * (the `cellpipe-runs` contents drive).
 */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

// The sidebar is created at activation (it is a tab in the left area from the start), so its
// modules are needed at once: nothing to gain from importing them lazily.
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { CellPipeClient } from './api';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { onRunsDrive, RunsDrive } from './drive';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { CellPipeContext, NotebookSession } from './session';
import {
  CommandIDs,
  DEFAULT_SETTINGS,
  ISidebarSettings,
  PLUGIN_ID
} from './tokens';
import { pipelineIcon } from './widgets/icons';
// eslint-disable-next-line jupyter/prefer-lazy-imports
import { CellPipeSidebar } from './widgets/Sidebar';

function readSettings(settings: ISettingRegistry.ISettings): ISidebarSettings {
  const composite = settings.composite as Partial<ISidebarSettings>;
  return {
    defaultEngine: String(
      composite.defaultEngine ?? DEFAULT_SETTINGS.defaultEngine
    ),
    registry: String(composite.registry ?? DEFAULT_SETTINGS.registry),
    kfpHost: String(composite.kfpHost ?? DEFAULT_SETTINGS.kfpHost),
    namespace: String(composite.namespace ?? DEFAULT_SETTINGS.namespace),
    compileDelay: Number(
      composite.compileDelay ?? DEFAULT_SETTINGS.compileDelay
    )
  };
}

const NO_ARGS = { args: { type: 'object' as const, properties: {} } };

/** Opens the main-area pipeline view of the notebook in focus, beside it. */
const OPEN_PIPELINE_VIEW = 'cellpipe:open-pipeline-view';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'The cellpipe sidebar: tag cells as steps, see the pipeline, run it and follow its runs.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [
    ILabShell,
    ISettingRegistry,
    ICommandPalette,
    ILayoutRestorer,
    IRenderMimeRegistry,
    IDocumentManager
  ],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    labShell: ILabShell | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    rendermime: IRenderMimeRegistry | null,
    docManager: IDocumentManager | null
  ) => {
    const client = new CellPipeClient(app.serviceManager.serverSettings);
    const context = new CellPipeContext(client);
    if (docManager) {
      // the runs' executed notebooks, read-only: cellpipe-runs:RUN_ID/notebook.ipynb
      app.serviceManager.contents.addDrive(new RunsDrive(client));
    }
    const sidebar = new CellPipeSidebar(app, context, {
      rendermime,
      docManager
    });
    const sessions = new Map<NotebookPanel, NotebookSession>();

    // A run's executed notebook (cellpipe-runs:RUN_ID/notebook.ipynb) is the record of a
    // run, not a pipeline: the sidebar stays on the notebook it was showing.
    const isRecord = (panel: NotebookPanel | null) =>
      !!panel && onRunsDrive(panel.context.path);

    const sessionOf = (panel: NotebookPanel | null): NotebookSession | null => {
      if (!panel || panel.isDisposed || isRecord(panel)) {
        return null;
      }
      let session = sessions.get(panel);
      if (!session) {
        session = new NotebookSession(panel, context);
        sessions.set(panel, session);
        panel.disposed.connect(() => {
          sessions.get(panel)?.dispose();
          sessions.delete(panel);
          if (sidebar.session?.panel === panel) {
            sidebar.session = null;
            sidebar.activeCell = null;
          }
        });
      }
      return session;
    };

    const follow = () => {
      const panel = tracker.currentWidget;
      if (isRecord(panel)) {
        return;
      }
      sidebar.session = sessionOf(panel);
      sidebar.activeCell = panel?.content.activeCell ?? null;
    };
    tracker.currentChanged.connect(follow);
    tracker.activeCellChanged.connect(follow);
    // Every open notebook gets its cells marked, not only the one in focus.
    tracker.widgetAdded.connect((_, panel) => void sessionOf(panel));

    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, sidebar.id);

    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          context.settings = readSettings(settings);
          settings.changed.connect(() => {
            context.settings = readSettings(settings);
          });
        })
        .catch(reason => {
          console.error('cellpipe: could not load the settings', reason);
        });
    }
    void context.load();

    const hasNotebook = () => tracker.currentWidget !== null;
    app.commands.addCommand(CommandIDs.open, {
      label: 'Show the cellpipe Sidebar',
      icon: pipelineIcon,
      describedBy: NO_ARGS,
      execute: () => {
        if (labShell) {
          labShell.activateById(sidebar.id);
        } else {
          app.shell.activateById(sidebar.id);
        }
      }
    });
    app.commands.addCommand(CommandIDs.run, {
      label: 'Run the Notebook as a Pipeline…',
      isEnabled: hasNotebook,
      describedBy: {
        args: {
          type: 'object',
          properties: {
            engine: {
              type: 'string',
              description: 'The engine the Run dialog starts with'
            }
          }
        }
      },
      execute: args => {
        follow();
        return sidebar.run(
          typeof args.engine === 'string' ? args.engine : undefined
        );
      }
    });
    app.commands.addCommand(CommandIDs.tune, {
      label: 'Tune the Pipeline Parameters…',
      isEnabled: hasNotebook,
      describedBy: NO_ARGS,
      execute: () => {
        follow();
        return sidebar.tune();
      }
    });
    app.commands.addCommand(CommandIDs.download, {
      label: 'Download the Compiled Pipeline (YAML)',
      isEnabled: hasNotebook,
      describedBy: NO_ARGS,
      execute: () => {
        follow();
        return sidebar.download();
      }
    });
    app.commands.addCommand(CommandIDs.compile, {
      label: 'Compile the Notebook as a Pipeline',
      isEnabled: hasNotebook,
      describedBy: NO_ARGS,
      execute: () => {
        follow();
        return sidebar.session?.pipeline.compile();
      }
    });
    app.commands.addCommand(OPEN_PIPELINE_VIEW, {
      label: 'Open the Pipeline View',
      icon: pipelineIcon,
      isEnabled: hasNotebook,
      describedBy: NO_ARGS,
      execute: () => {
        follow();
        sidebar.openPipelineView();
      }
    });
    if (palette) {
      const category = 'cellpipe';
      for (const command of [
        ...Object.values(CommandIDs),
        OPEN_PIPELINE_VIEW
      ]) {
        palette.addItem({ command, category });
      }
    }
    follow();
  }
};

export default plugin;
