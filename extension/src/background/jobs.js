// Progress and cancel of one upload on the companion (docs/api.md, "Jobs"):
// every POST /v1/cloak carries `X-Veil-Job: <id>`, an id the extension draws
// at random; while the cloak takes longer than a moment (a video, a large
// HEIC) GET /v1/jobs/{id} is polled for the percentage, and DELETE
// /v1/jobs/{id} stops the work when the person cancels or a later pick
// supersedes this one.

// Polling starts after this: most photos are done before, and need no poll at all.
export const POLL_DELAY_MS = 1000;
export const POLL_EVERY_MS = 500;
const JOB_REQUEST_TIMEOUT_MS = 3000;
const JOB_ID_BYTES = 16;

/**
 * @typedef {object} JobStatus  GET /v1/jobs/{id}.
 * @property {string} job
 * @property {'receiving' | 'queued' | 'working' | 'done' | 'failed' | 'cancelled'} state
 * @property {number} progress  0..1
 * @property {string} stage  'receiving', 'queued', 'scanning', 'cloaking', 'encoding' or 'done'.
 */

/**
 * A fresh job id: 32 characters of [0-9a-f] (the contract allows 16-64 of [A-Za-z0-9_-]).
 * @returns {string}
 */
export function newJobId() {
  const bytes = crypto.getRandomValues(new Uint8Array(JOB_ID_BYTES));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** @param {unknown} job */
export const isJobId = (job) => typeof job === 'string' && /^[A-Za-z0-9_-]{16,64}$/.test(job);

/**
 * @typedef {object} JobTarget
 * @property {string} base  http://127.0.0.1:<port>
 * @property {string} token
 * @property {string} job
 */

/**
 * @param {JobTarget} target
 * @param {'GET' | 'DELETE'} method
 * @returns {Promise<Response>}
 */
function jobRequest(target, method) {
  return fetch(`${target.base}/v1/jobs/${encodeURIComponent(target.job)}`, {
    method,
    headers: { Authorization: `Bearer ${target.token}` },
    signal: AbortSignal.timeout(JOB_REQUEST_TIMEOUT_MS),
    cache: 'no-store',
    credentials: 'omit',
  });
}

/**
 * Polls the job's progress until `stop()`; each answer (or null when the
 * companion gave none: an older companion, or the job not yet registered)
 * goes to `onStatus`, which doubles as a sign of life for the caller.
 * @param {JobTarget} target
 * @param {(status: JobStatus | null) => void} onStatus
 * @returns {() => void}  stop
 */
export function watchJob(target, onStatus) {
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const poll = async () => {
    /** @type {JobStatus | null} */
    let status = null;
    try {
      const response = await jobRequest(target, 'GET');
      if (response.ok) {
        const body = await response.json();
        if (body && typeof body.progress === 'number') status = /** @type {JobStatus} */ (body);
      }
    } catch {
      // Not answered this time: the upload's own request says whether the companion is gone.
    }
    if (stopped) return;
    onStatus(status);
    timer = setTimeout(poll, POLL_EVERY_MS);
  };
  timer = setTimeout(poll, POLL_DELAY_MS);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * Asks the companion to stop the job (the caller also aborts its request,
 * which the companion takes as a cancel too). Never throws.
 * @param {JobTarget} target
 * @returns {Promise<boolean>}  Whether the companion confirmed.
 */
export async function cancelJob(target) {
  try {
    const response = await jobRequest(target, 'DELETE');
    return response.ok;
  } catch {
    return false;
  }
}
