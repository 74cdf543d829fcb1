import {
  isManagedTag,
  readCellSettings,
  readStepLine,
  shellWords,
  validateSettings,
  writeCellTags
} from '../tags';

describe('readCellSettings', () => {
  it('reads a step with its settings', () => {
    const settings = readCellSettings([
      'step:train',
      'after:split',
      'after:load data',
      'gpu:2:NVIDIA-A100',
      'cpu:500m',
      'memory:4Gi',
      'image:python:3.12',
      'hide-input'
    ]);
    expect(settings).toEqual({
      role: 'step',
      names: ['train'],
      after: ['split', 'load data'],
      gpuCount: 2,
      gpuType: 'NVIDIA-A100',
      cpu: '500m',
      memory: '4Gi',
      image: 'python:3.12'
    });
  });

  it("reads Kale's dialect", () => {
    const settings = readCellSettings([
      'block:train',
      'prev:split',
      'limit:nvidia.com/gpu:1',
      'limit:memory:2Gi'
    ]);
    expect(settings.role).toBe('step');
    expect(settings.names).toEqual(['train']);
    expect(settings.after).toEqual(['split']);
    expect(settings.gpuCount).toBe(1);
    expect(settings.memory).toBe('2Gi');
  });

  it('lets a role word win over a step tag, as Kale does', () => {
    expect(readCellSettings(['step:x', 'skip']).role).toBe('skip');
    expect(readCellSettings(['pipeline-parameters']).role).toBe('parameters');
  });

  it('says a cell without role tags continues the role above', () => {
    expect(readCellSettings(['gpu:1']).role).toBe('continue');
    expect(readCellSettings([]).role).toBe('continue');
  });

  it("reads a %%step first line's tags", () => {
    const line = readStepLine(
      '%%step "Load data!" --after a b --gpu 1:A100 --cpu 2\nx = 1'
    );
    expect(line?.tags).toEqual([
      'step:Load data!',
      'after:a',
      'after:b',
      'gpu:1:A100',
      'cpu:2'
    ]);
    expect(readCellSettings([], line).names).toEqual(['Load data!']);
    expect(readStepLine('%%stepper x')).toBeNull();
    expect(readStepLine('x = 1')).toBeNull();
  });
});

describe('writeCellTags', () => {
  it('writes cellpipe tags first and keeps every other tag', () => {
    const tags = writeCellTags(['hide-input', 'step:old', 'retries:2'], {
      role: 'step',
      names: ['report'],
      after: ['train'],
      gpuCount: 1,
      gpuType: '',
      cpu: '',
      memory: '8Gi',
      image: ''
    });
    expect(tags).toEqual([
      'step:report',
      'after:train',
      'gpu:1',
      'memory:8Gi',
      'hide-input',
      'retries:2'
    ]);
  });

  it("rewrites Kale's tags in cellpipe's dialect", () => {
    const tags = ['block:train', 'prev:split', 'limit:nvidia.com/gpu:2'];
    expect(writeCellTags(tags, readCellSettings(tags))).toEqual([
      'step:train',
      'after:split',
      'gpu:2'
    ]);
  });

  it('drops step settings from cells that are not part of a step', () => {
    const settings = readCellSettings(['step:x', 'gpu:1', 'after:y']);
    expect(
      writeCellTags(['step:x', 'gpu:1'], { ...settings, role: 'skip' })
    ).toEqual(['skip']);
    expect(
      writeCellTags(['step:x'], { ...settings, role: 'continue' })
    ).toEqual(['gpu:1']); // after: belongs to the cell that begins a step
  });

  it('round-trips what it reads', () => {
    const tags = ['step:a', 'after:b', 'gpu:1:T4', 'cpu:1', 'image:x:1'];
    expect(writeCellTags(tags, readCellSettings(tags))).toEqual(tags);
  });
});

describe('validateSettings', () => {
  const base = readCellSettings(['step:a']);

  it('accepts good settings', () => {
    expect(validateSettings({ ...base, cpu: '500m', memory: '4Gi' })).toEqual(
      []
    );
  });

  it('says what is wrong, in the converter words', () => {
    expect(validateSettings({ ...base, names: [''] })).toEqual([
      'name the step'
    ]);
    expect(validateSettings({ ...base, names: ['a,b'] })[0]).toMatch(/comma/);
    expect(validateSettings({ ...base, cpu: 'lots' })[0]).toMatch(
      /not a Kubernetes quantity/
    );
    expect(validateSettings({ ...base, gpuCount: -1 })[0]).toMatch(/GPU/);
    expect(validateSettings({ ...base, gpuType: 'a b' })[0]).toMatch(
      /node label/
    );
    expect(validateSettings({ ...base, image: 'a b' })[0]).toMatch(/spaces/);
  });
});

describe('helpers', () => {
  it('knows which tags it manages', () => {
    expect(isManagedTag('step:x')).toBe(true);
    expect(isManagedTag('limit:memory:1Gi')).toBe(true);
    expect(isManagedTag('limit:example.com/fpga:1')).toBe(false);
    expect(isManagedTag('env:A=1')).toBe(false);
    expect(isManagedTag('hide-input')).toBe(false);
  });

  it('splits words as a shell does', () => {
    expect(shellWords(` a "b c" 'd e' f\\ g`)).toEqual([
      'a',
      'b c',
      'd e',
      'f g'
    ]);
  });
});
