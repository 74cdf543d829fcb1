/**
 * jest for the sidebar's models and request layer (labextension/src/__tests__). JupyterLab's
 * packages are ES modules: ts-jest compiles them along with our TypeScript.
 */
const esModules = [
  '@jupyterlab/',
  '@jupyter/',
  '@lumino/',
  'lib0',
  'y-protocols',
  'yjs',
  'nanoid'
].join('|');

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/labextension/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  moduleFileExtensions: ['ts', 'tsx', 'js', 'mjs', 'cjs', 'json'],
  transform: {
    '^.+\\.(t|j|mj)sx?$': [
      'ts-jest',
      { tsconfig: '<rootDir>/tsconfig.test.json', diagnostics: false }
    ]
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esModules}))`],
  collectCoverageFrom: [
    'labextension/src/**/*.{ts,tsx}',
    '!labextension/src/**/*.d.ts',
    '!labextension/src/__tests__/**'
  ],
  coverageDirectory: 'coverage',
  coverageReporters: ['text-summary', 'lcov']
};
