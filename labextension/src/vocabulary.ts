/**
 * Decisions on the server's names (GET /config `vocabulary`): is a run finished, what kind of
 * engine is this, which builders may a run use. Every one reads the vocabulary the server
 * published; before /config has answered (null) nothing is finished, no engine is a cluster or
 * training engine and no builder is offered, so nothing is decided on a guess.
 */
import { IServerConfig, IVocabulary } from './tokens';

/** Where the vocabulary comes from: the loaded /config's, or null while it has not answered. */
export type VocabularySource = () => IVocabulary | null;

/** The vocabulary of a /config answer (null before it answered, or if it has none). */
export function vocabularyOf(
  config: IServerConfig | null | undefined
): IVocabulary | null {
  return config?.vocabulary ?? null;
}

/** Has a run, step or build with this status ended (it will not change again)? */
export function isFinished(
  vocabulary: IVocabulary | null,
  status: string
): boolean {
  return (
    (vocabulary?.finished as ReadonlyArray<string> | undefined)?.includes(
      status
    ) ?? false
  );
}

/** Does this engine run the pipeline on this machine (`cellpipe run`)? */
export function isLocalEngine(
  vocabulary: IVocabulary | null,
  engine: string
): boolean {
  return vocabulary?.local_engines.includes(engine) ?? false;
}

/** Does this engine submit a training job (its runs take a number of workers)? */
export function isTrainingEngine(
  vocabulary: IVocabulary | null,
  engine: string
): boolean {
  return vocabulary?.training_engines.includes(engine) ?? false;
}

/**
 * Does this engine submit to a cluster (GPU choices, namespace, builder)? A training engine
 * does. Any other engine runs on the server's machine, as the server runs it.
 */
export function isClusterEngine(
  vocabulary: IVocabulary | null,
  engine: string
): boolean {
  return (
    (vocabulary?.cluster_engines.includes(engine) ?? false) ||
    isTrainingEngine(vocabulary, engine)
  );
}

/** The kind of an engine, for display and ordering. */
export type EngineKind = 'local' | 'cluster' | 'training' | 'other';

export function engineKind(
  vocabulary: IVocabulary | null,
  engine: string
): EngineKind {
  if (isTrainingEngine(vocabulary, engine)) {
    return 'training';
  }
  if (isClusterEngine(vocabulary, engine)) {
    return 'cluster';
  }
  if (isLocalEngine(vocabulary, engine)) {
    return 'local';
  }
  return 'other';
}

/**
 * Engines in the order people expect: this machine's (the vocabulary's order), others the
 * server registered (by name), then the cluster's (the vocabulary's order).
 */
export function orderEngines(
  vocabulary: IVocabulary | null,
  engines: Iterable<string>
): string[] {
  const known = [
    ...(vocabulary?.local_engines ?? []),
    ...(vocabulary?.cluster_engines ?? []),
    ...(vocabulary?.training_engines ?? [])
  ];
  const group: Record<EngineKind, number> = {
    local: 0,
    other: 1,
    cluster: 2,
    training: 2
  };
  const rank = (engine: string) => {
    const index = known.indexOf(engine);
    return index < 0 ? known.length : index;
  };
  return [...engines].sort(
    (a, b) =>
      group[engineKind(vocabulary, a)] - group[engineKind(vocabulary, b)] ||
      rank(a) - rank(b) ||
      a.localeCompare(b)
  );
}

/** The builders a cluster run (POST /runs) may use: those that build from this machine. */
export function runBuilders(vocabulary: IVocabulary | null): string[] {
  return [...(vocabulary?.builders_here ?? [])];
}

/**
 * The builder a cluster run starts with: the server's configured one when a run may use it,
 * else the vocabulary's default, else the first there is ('' when none is known yet).
 */
export function initialBuilder(config: IServerConfig | null): string {
  const vocabulary = vocabularyOf(config);
  const choices = runBuilders(vocabulary);
  for (const builder of [config?.builder, vocabulary?.default_builder]) {
    if (builder && choices.includes(builder)) {
      return builder;
    }
  }
  return choices[0] ?? '';
}
