/**
 * What JupyterLab's widgets need of a browser that jsdom lacks; imported first by the specs
 * that render (`@jest-environment jsdom`).
 */
const globals = globalThis as Record<string, unknown>;

if (typeof globals.DragEvent === 'undefined') {
  // @lumino/dragdrop subclasses it when loaded
  globals.DragEvent = class DragEvent extends MouseEvent {};
}

// React wants to be told it runs under a test (act).
globals.IS_REACT_ACT_ENVIRONMENT = true;

export {};
