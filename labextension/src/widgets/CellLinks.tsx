/**
 * A message or traceback with each `cell N` in it a link to the cell (React; notebook.ts's
 * linkedText does the same for the marks under the cells and the log panel).
 */
import * as React from 'react';

import { cellLinks } from '../steps';

export function CellLinkedText(props: {
  text: string;
  /** Goes to cell N (counting from 1); without it the text is plain. */
  onCell?: (cell: number) => void;
}): React.ReactElement {
  const { onCell } = props;
  return (
    <>
      {cellLinks(props.text).map((part, i) =>
        typeof part === 'string' || !onCell ? (
          <React.Fragment key={i}>
            {typeof part === 'string' ? part : part.text}
          </React.Fragment>
        ) : (
          <button
            key={i}
            type="button"
            className="cp-CellLink"
            title={`Go to ${part.text} of the notebook`}
            onClick={event => {
              event.stopPropagation();
              onCell(part.cell);
            }}
          >
            {part.text}
          </button>
        )
      )}
    </>
  );
}
