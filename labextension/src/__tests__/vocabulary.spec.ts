/** Decisions on the server's vocabulary (GET /config), and none before it has answered. */
import { IVocabulary } from '../tokens';
import {
  engineKind,
  initialBuilder,
  isClusterEngine,
  isFinished,
  isLocalEngine,
  isTrainingEngine,
  orderEngines,
  runBuilders,
  vocabularyOf
} from '../vocabulary';
import { config, vocabulary } from './fixtures';

describe('the vocabulary', () => {
  it('says which statuses are final, as the server lists them', () => {
    const words = vocabulary();
    expect(words.statuses.filter(s => isFinished(words, s))).toEqual([
      'Succeeded',
      'Failed',
      'Cancelled'
    ]);
    // The server's word, not the sidebar's: a list without Cancelled makes it unfinished
    expect(
      isFinished(vocabulary({ finished: ['Succeeded', 'Failed'] }), 'Cancelled')
    ).toBe(false);
  });

  it('decides nothing before /config has answered', () => {
    expect(vocabularyOf(null)).toBeNull();
    expect(isFinished(null, 'Succeeded')).toBe(false);
    expect(isLocalEngine(null, 'local')).toBe(false);
    expect(isClusterEngine(null, 'kfp')).toBe(false);
    expect(isTrainingEngine(null, 'pytorchjob')).toBe(false);
    expect(runBuilders(null)).toEqual([]);
    expect(initialBuilder(null)).toBe('');
    expect(orderEngines(null, ['b', 'a'])).toEqual(['a', 'b']);
  });

  it('tells engine kinds apart from its lists', () => {
    const words = vocabulary();
    expect(
      ['local', 'kfp-local', 'kfp', 'tfjob', 'mine'].map(e =>
        engineKind(words, e)
      )
    ).toEqual(['local', 'local', 'cluster', 'training', 'other']);
    expect(isClusterEngine(words, 'trainjob')).toBe(true);
    expect(isClusterEngine(words, 'mine')).toBe(false);
  });

  it('takes an engine it has never heard of as the kind the server publishes', () => {
    const words: IVocabulary = vocabulary({
      cluster_engines: [...vocabulary().cluster_engines, 'rayjob'],
      training_engines: [...vocabulary().training_engines, 'rayjob']
    });
    expect(engineKind(words, 'rayjob')).toBe('training');
    expect(isClusterEngine(words, 'rayjob')).toBe(true);
    expect(engineKind(vocabulary(), 'rayjob')).toBe('other');
  });

  it("orders engines: this machine's, others, then the cluster's", () => {
    expect(
      orderEngines(vocabulary(), [
        'trainjob',
        'zeta',
        'kfp',
        'kfp-local',
        'pytorchjob',
        'local',
        'alpha'
      ])
    ).toEqual([
      'local',
      'kfp-local',
      'alpha',
      'zeta',
      'kfp',
      'pytorchjob',
      'trainjob'
    ]);
  });

  it('offers a run the builders that build from here, the configured one first', () => {
    expect(runBuilders(vocabulary())).toEqual(['append', 'engine']);
    expect(initialBuilder(config())).toBe('append');
    expect(initialBuilder(config({ builder: 'engine' }))).toBe('engine');
    // kaniko builds inside the cluster: a run cannot use it, so the vocabulary's default
    expect(initialBuilder(config({ builder: 'kaniko' }))).toBe('append');
    expect(
      initialBuilder(
        config({
          builder: 'kaniko',
          vocabulary: vocabulary({
            builders_here: ['buildah'],
            default_builder: 'kaniko'
          })
        })
      )
    ).toBe('buildah');
  });
});
