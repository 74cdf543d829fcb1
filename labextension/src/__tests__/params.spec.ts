import {
  gpuOverrides,
  parameterText,
  parseParameter,
  readParameters
} from '../params';
import { compileResult } from './fixtures';

describe('parameters in the Run dialog', () => {
  it('shows defaults as text', () => {
    expect(parameterText('int', 20)).toBe('20');
    expect(parameterText('bool', true)).toBe('true');
    expect(parameterText('list', [1, 2])).toBe('[1,2]');
    expect(parameterText('str', 'a b')).toBe('a b');
  });

  it('reads values by type, as cellpipe run -p does', () => {
    expect(parseParameter('n', 'int', ' 42 ')).toEqual({ value: 42 });
    expect(parseParameter('n', 'int', '4.2')).toEqual({
      error: "n: '4.2' is not a whole number (int)"
    });
    expect(parseParameter('r', 'float', '1e-3')).toEqual({ value: 0.001 });
    expect(parseParameter('r', 'float', 'x')).toHaveProperty('error');
    expect(parseParameter('b', 'bool', 'False')).toEqual({ value: false });
    expect(parseParameter('b', 'bool', 'maybe')).toHaveProperty('error');
    expect(parseParameter('s', 'str', ' kept ')).toEqual({ value: ' kept ' });
    expect(parseParameter('l', 'list', '[1, "a"]')).toEqual({
      value: [1, 'a']
    });
    expect(parseParameter('l', 'list', '{}')).toHaveProperty('error');
    expect(parseParameter('d', 'dict', '{"a": 1}')).toEqual({
      value: { a: 1 }
    });
    expect(parseParameter('d', 'dict', '[1]')).toHaveProperty('error');
  });

  it('sends only what differs from the defaults, and every problem', () => {
    const types = { epochs: 'int', rate: 'float', name: 'str' } as const;
    const defaults = { epochs: 20, rate: 0.1, name: 'x' };
    expect(readParameters(types, defaults, { epochs: '30' })).toEqual({
      values: { epochs: 30 },
      problems: []
    });
    expect(
      readParameters(types, defaults, { epochs: 'ten', rate: '0.1' }).problems
    ).toEqual(["epochs: 'ten' is not a whole number (int)"]);
  });

  it('leaves an optional parameter (name = None) empty and unsent until typed in', () => {
    const types = { name: 'str', limit: 'int' } as const;
    const defaults = { name: null, limit: null };
    expect(parameterText('str', null)).toBe('');
    expect(readParameters(types, defaults, {})).toEqual({
      values: {},
      problems: []
    });
    expect(
      readParameters(types, defaults, { name: 'text', limit: '3' })
    ).toEqual({ values: { name: 'text', limit: 3 }, problems: [] });
  });
});

describe('GPU choices in the Run dialog', () => {
  it('sends only the steps whose choice differs from their tag', () => {
    const result = compileResult();
    const problems: string[] = [];
    expect(
      gpuOverrides(result, { train: { count: '1', type: '' } }, problems)
    ).toEqual({});
    expect(
      gpuOverrides(result, { train: { count: '2', type: 'A100' } }, problems)
    ).toEqual({ train: '2:A100' });
    expect(
      gpuOverrides(result, { train: { count: '0', type: '' } }, problems)
    ).toEqual({ train: '0' });
    expect(problems).toEqual([]);
    gpuOverrides(result, { train: { count: 'two', type: '' } }, problems);
    expect(problems).toEqual(['train: the GPU count must be a whole number']);
  });
});
