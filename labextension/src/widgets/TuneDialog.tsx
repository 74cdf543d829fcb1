/**
 * The Tune dialog: each parameter of the parameters cell with its default and a range field
 * (the SPACE grammar of `cellpipe tune --search`), the objective among the metrics, direction,
 * algorithm, trials and parallel trials, the engine; then POST /tunes and the tune's view.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  Dialog,
  Notification,
  ReactWidget,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { HTMLSelect } from '@jupyterlab/ui-components';
import * as React from 'react';

import { routeErrorMessage } from '../serve';
import { parameterText } from '../params';
import { CellPipeContext, NotebookSession } from '../session';
import { ICompileResult } from '../tokens';
import {
  ALGORITHMS,
  initialTuneForm,
  ITuneForm,
  likelyDirection,
  readTuneForm,
  SPACE_EXAMPLES,
  spaceProblem,
  TUNE_ENGINES
} from '../tune';
import { compiledFor } from './RunDialog';
import { openTunePanel } from './TuneView';

export class TuneDialogBody
  extends ReactWidget
  implements Dialog.IBodyWidget<ITuneForm>
{
  constructor(readonly result: ICompileResult) {
    super();
    this.addClass('cp-TuneDialog');
    this._form = initialTuneForm(result);
  }

  getValue(): ITuneForm {
    return this._form;
  }

  protected render(): React.ReactElement {
    return (
      <TuneForm
        result={this.result}
        form={this._form}
        onChange={change => {
          this._form = { ...this._form, ...change };
          this.update();
        }}
      />
    );
  }

  private _form: ITuneForm;
}

function TuneForm(props: {
  result: ICompileResult;
  form: ITuneForm;
  onChange: (change: Partial<ITuneForm>) => void;
}): React.ReactElement {
  const { result, form, onChange } = props;
  const parameters = Object.entries(result.parameter_types);
  const number = (
    key: 'trials' | 'parallel' | 'seed',
    label: string,
    hint: string
  ) => (
    <div className="cp-Field">
      <label htmlFor={`cp-tune-${key}`}>{label}</label>
      <input
        id={`cp-tune-${key}`}
        className="jp-mod-styled cp-Number"
        type="number"
        min={key === 'seed' ? 0 : 1}
        placeholder={hint}
        value={form[key]}
        onChange={event => onChange({ [key]: event.currentTarget.value })}
      />
    </div>
  );
  return (
    <form
      className="cp-RunForm cp-TuneForm"
      aria-label="Tune the pipeline's parameters"
      onSubmit={event => event.preventDefault()}
    >
      <fieldset className="cp-Field">
        <legend>Search space</legend>
        {parameters.length === 0 && (
          <span className="cp-Hint">
            The notebook has no parameters cell: nothing to tune.
          </span>
        )}
        <table className="cp-Table cp-ParamTable cp-SpaceTable">
          <thead>
            <tr>
              <th scope="col">Parameter</th>
              <th scope="col">Default</th>
              <th scope="col">Range (empty: keep the default)</th>
            </tr>
          </thead>
          <tbody>
            {parameters.map(([name, type]) => {
              const text = form.spaces[name] ?? '';
              const problem = text.trim()
                ? spaceProblem(name, type, text, form.algorithm)
                : null;
              const tunable = type !== 'list' && type !== 'dict';
              return (
                <tr key={name} data-parameter={name}>
                  <th scope="row">
                    <label htmlFor={`cp-space-${name}`}>{name}</label>
                    <span className="cp-Type">{type}</span>
                  </th>
                  <td>
                    <code>{parameterText(type, result.parameters[name])}</code>
                  </td>
                  <td>
                    <input
                      id={`cp-space-${name}`}
                      className={`jp-mod-styled cp-Input${problem ? ' cp-mod-invalid' : ''}`}
                      type="text"
                      disabled={!tunable}
                      aria-label={`Range of ${name} (${type})`}
                      aria-invalid={problem !== null}
                      placeholder={
                        tunable ? SPACE_EXAMPLES[type] : 'not tunable'
                      }
                      value={text}
                      onChange={event =>
                        onChange({
                          spaces: {
                            ...form.spaces,
                            [name]: event.currentTarget.value
                          }
                        })
                      }
                    />
                    {problem && (
                      <div className="cp-FieldProblem" role="alert">
                        {problem}
                      </div>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
        <p className="cp-Hint">
          <code>1..6</code> whole numbers, <code>0.001..0.1</code> uniform,{' '}
          <code>0.001..0.1:log</code> log-uniform, <code>0.1..0.9:0.2</code> in
          steps, <code>a,b,c</code> choices.
        </p>
      </fieldset>
      <div className="cp-TuneSettings">
        <div className="cp-Field">
          <label htmlFor="cp-tune-objective">Objective</label>
          <HTMLSelect
            id="cp-tune-objective"
            aria-label="Objective metric"
            value={form.objective}
            onChange={event => {
              const objective = event.currentTarget.value;
              onChange({ objective, direction: likelyDirection(objective) });
            }}
            options={
              result.metrics.length
                ? result.metrics
                : [{ value: '', label: 'the notebook has no metrics' }]
            }
          />
          <HTMLSelect
            aria-label="Direction"
            value={form.direction}
            onChange={event =>
              onChange({
                direction: event.currentTarget.value as ITuneForm['direction']
              })
            }
            options={['maximize', 'minimize']}
          />
        </div>
        <div className="cp-Field">
          <label htmlFor="cp-tune-algorithm">Algorithm</label>
          <HTMLSelect
            id="cp-tune-algorithm"
            aria-label="Algorithm"
            value={form.algorithm}
            onChange={event =>
              onChange({ algorithm: event.currentTarget.value })
            }
            options={[...ALGORITHMS]}
          />
        </div>
        <div className="cp-Field">
          <label htmlFor="cp-tune-engine">Engine</label>
          <HTMLSelect
            id="cp-tune-engine"
            aria-label="Tuning engine"
            value={form.engine}
            onChange={event => onChange({ engine: event.currentTarget.value })}
            options={[...TUNE_ENGINES]}
          />
        </div>
        {number('trials', 'Trials', 'all (grid)')}
        {number('parallel', 'Parallel trials', 'the cores')}
        {number('seed', 'Seed', 'none')}
      </div>
      <p className="cp-Hint">
        Steps that use no tuned parameter run once; every trial reuses them.
      </p>
    </form>
  );
}

/**
 * The tune runs the notebook as saved: with unsaved edits, save it first (asked), so the
 * trials run what the dialog was filled from. False: the person chose not to.
 */
async function savedForTheTune(session: NotebookSession): Promise<boolean> {
  const context = session.panel.context;
  if (!context.model.dirty) {
    return true;
  }
  const answer = await showDialog({
    title: 'Save the notebook first?',
    body: 'The tune runs the notebook as saved, and it has unsaved changes.',
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: 'Save and tune' })
    ]
  });
  if (!answer.button.accept) {
    return false;
  }
  await context.save();
  return true;
}

/**
 * Compile the notebook in focus, ask for the search, start the tune (POST /tunes) and open
 * its view beside the notebook.
 */
export async function tuneNotebook(
  app: JupyterFrontEnd,
  context: CellPipeContext,
  session: NotebookSession | null
): Promise<void> {
  if (!session) {
    return;
  }
  const result = await compiledFor(session, 'tune');
  if (!result) {
    return;
  }
  const answer = await showDialog<ITuneForm>({
    title: `Tune ${result.pipeline}`,
    body: new TuneDialogBody(result),
    buttons: [
      Dialog.cancelButton(),
      Dialog.okButton({ label: 'Tune', ariaLabel: 'Start the tune' })
    ],
    focusNodeSelector: 'input[type="text"]:not([disabled])'
  });
  if (!answer.button.accept || !answer.value) {
    return;
  }
  const { request, problems } = readTuneForm(result, answer.value);
  if (problems.length) {
    await showErrorMessage('Cannot tune the pipeline', problems.join('\n'));
    return;
  }
  if (!(await savedForTheTune(session))) {
    return;
  }
  try {
    // POST /tunes reads the saved notebook (each trial is a run of the file, as the CLI's)
    const tune = await context.client.startTune({
      ...request,
      path: session.source.path
    });
    Notification.info(`Tune ${tune.tune_id} started (${tune.engine})`, {
      autoClose: 4000
    });
    openTunePanel(app, context, tune, session, result.parameter_types);
  } catch (error) {
    await showErrorMessage(
      'The tune did not start',
      routeErrorMessage(error, 'POST /tunes')
    );
  }
}
