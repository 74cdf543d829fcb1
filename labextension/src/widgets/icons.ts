import { LabIcon } from '@jupyterlab/ui-components';

/** The sidebar's tab icon: three steps joined as a small DAG (themed by jp-icon classes). */
const PIPELINE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="2" y="2" width="9" height="6" rx="1.5"/>
    <rect x="13" y="9" width="9" height="6" rx="1.5"/>
    <rect x="2" y="16" width="9" height="6" rx="1.5"/>
    <path d="M6 8h1.4v3.3H13v1.4H7.4V16H6z"/>
  </g>
</svg>`;

export const pipelineIcon = new LabIcon({
  name: 'cellpipe:pipeline',
  svgstr: PIPELINE_SVG
});
