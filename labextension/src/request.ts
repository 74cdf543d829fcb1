import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { API_NAMESPACE, IErrorBody } from './tokens';

/**
 * The server refused a request: the HTTP status, the server's `reason` (a short machine word
 * such as `notebook_errors` or `not_found`), its `message` for people, and the whole JSON body.
 */
export class CellPipeRequestError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    readonly reason: string,
    message: string,
    readonly body: IErrorBody | null
  ) {
    super(response, message);
    this.name = 'CellPipeRequestError';
  }

  get status(): number {
    return this.response.status;
  }
}

/** The URL of an endpoint under the API namespace. */
export function apiUrl(
  endpoint: string,
  serverSettings: ServerConnection.ISettings
): string {
  return URLExt.join(serverSettings.baseUrl, API_NAMESPACE, endpoint);
}

/**
 * Call the cellpipe server extension: every HTTP request of the sidebar goes through here.
 *
 * @param endpoint path under /cellpipe/api, with its query string (`runs?notebook=a.ipynb`)
 * @param init the fetch options (method, body)
 * @param serverSettings the server connection settings (base URL, token, fetch)
 * @returns the JSON body; undefined for an empty answer (204)
 * @throws CellPipeRequestError with the server's message when the answer is not 2xx;
 *   ServerConnection.NetworkError when the server cannot be reached
 */
export async function requestAPI<T>(
  endpoint: string,
  init: RequestInit = {},
  serverSettings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = apiUrl(endpoint, serverSettings);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, serverSettings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
  let data: unknown = undefined;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }

  if (!response.ok) {
    const body =
      data !== null && typeof data === 'object' ? (data as IErrorBody) : null;
    const message =
      body && typeof body.message === 'string'
        ? body.message
        : typeof data === 'string' && data
          ? data
          : `${response.status} ${response.statusText}`;
    const reason = body && typeof body.reason === 'string' ? body.reason : '';
    throw new CellPipeRequestError(response, reason, message, body);
  }
  return data as T;
}
