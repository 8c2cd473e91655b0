// HTTP client for the local companion (docs/api.md). Only the background
// worker and extension pages call it: their requests carry the extension's
// Origin, which is the only origin the companion accepts.

import { CLIENT_ERRORS, VeilFailure } from '../shared/client-errors.js';
import { ERROR_CODES } from '../shared/error-codes.js';
import { loadSettings, loadToken } from '../shared/settings.js';
import { cancelJob, isJobId, newJobId, watchJob } from './jobs.js';

/**
 * @typedef {object} Health
 * @property {string} name
 * @property {string} version
 * @property {number} api
 * @property {unknown[]} models
 * @property {boolean} paired
 */

/**
 * @typedef {object} CloakOutcome
 * @property {Blob} body  The cloaked file, same format as the input.
 * @property {string} type
 * @property {number} faces
 * @property {number | null} seconds  The companion's own processing time.
 * @property {number | null} ssim
 * @property {number | null} faceSsimulacra2  The most visible face's SSIMULACRA2 (100 = unchanged).
 * @property {Array<[number, number, number, number]>} boxes  Face boxes (x, y, w, h) when the companion sends them.
 * @property {Array<FaceProfile | null>} profiles  Per face, in the order of `boxes`: the enrolled person it was
 *   recognised as and the strength of the personal cloak it got, or null (the default cloak).
 * @property {string | null} faceFrames  Videos and animated images: X-Veil-Face-Frames, "cloaked/total" face-frames.
 */

/** @typedef {'light' | 'medium' | 'strong'} Strength */

/**
 * @typedef {object} FaceProfile
 * @property {string} profile  The enrolled person's name.
 * @property {Strength} strength
 */

/**
 * @typedef {object} ProfileSummary  What the companion tells about an enrolled person (never biometrics).
 * @property {string} id
 * @property {string} name
 * @property {Strength} [strength]
 * @property {number} [created]  Unix seconds.
 * @property {number} [photos]
 * @property {string} [unusable]  Why this profile cannot be used (damaged, other models): forget it and enrol again.
 */

/**
 * @typedef {object} StrengthFigures  One strength, with what it buys as the companion measured it.
 * @property {Strength} strength
 * @property {boolean} recommended
 * @property {string} description
 */

/**
 * @typedef {object} EnrolError
 * @property {string} code
 * @property {string} message
 * @property {number} [photo]  The photo (0-based) whose face Veil could not choose.
 * @property {Array<{box: [number, number, number, number], thumbnail: string | null}>} [faces]
 */

/**
 * @typedef {object} EnrolStatus  GET /v1/enrol/{job}.
 * @property {string} job
 * @property {'running' | 'done' | 'failed' | 'cancelled'} state
 * @property {number} progress  0..1
 * @property {string} name
 * @property {number} photos
 * @property {EnrolError | null} error
 * @property {Record<string, {feed: string, face: string}> | null} previews  'original' and each strength.
 * @property {StrengthFigures[]} strengths
 */

/**
 * @typedef {object} EnrolPhotoUpload
 * @property {string} name
 * @property {Blob} blob
 * @property {number} [face]  The face (0-based, from the left) the person chose in this photo.
 */

const HEALTH_TIMEOUT_MS = 3000;
// Cloaking a large photo on a slow CPU takes a while; past this the person is asked what to do.
const CLOAK_TIMEOUT_MS = 200_000; // the companion's own default time-out is 180 s
// A video's time-out on the companion scales with its duration (docs/api.md): the
// extension only caps it, and the person can Cancel any time (jobs.js).
const VIDEO_CLOAK_TIMEOUT_MS = 3 * 60 * 60 * 1000;
// Developer switch {debug: {cloakTimeoutMs: N}} in chrome.storage.local: a shorter cloak
// time-out, so the time-out prompt can be tested in seconds (tests/browser/test_chromium_paths.py).
// It can only shorten the time-out, never below this floor; a time-out always ends in
// Veil's prompt, never in the original being uploaded (docs/threat-model.md).
const DEBUG_CLOAK_TIMEOUT_FLOOR_MS = 1000;

/**
 * @param {boolean} video
 * @returns {Promise<number>} The cloak time-out: the default, or the shorter debug one.
 */
async function cloakTimeoutMs(video) {
  const standard = video ? VIDEO_CLOAK_TIMEOUT_MS : CLOAK_TIMEOUT_MS;
  try {
    const { debug } = await chrome.storage.local.get('debug');
    const asked = Number(/** @type {{cloakTimeoutMs?: unknown} | undefined} */ (debug)?.cloakTimeoutMs);
    if (asked >= DEBUG_CLOAK_TIMEOUT_FLOOR_MS && asked < standard) return asked;
  } catch {
    // No storage here: the default.
  }
  return standard;
}

/**
 * @param {number} [port]  The companion port when the caller already knows it.
 * @returns {Promise<string>}
 */
async function baseUrl(port) {
  return `http://127.0.0.1:${port ?? (await loadSettings()).port}`;
}

/**
 * fetch with a deadline, turning network failures into typed failures.
 * @param {string} url
 * @param {RequestInit} init
 * @param {number} timeoutMs
 * @param {AbortSignal} [cancel]  The person's (or a later pick's) Cancel.
 * @returns {Promise<Response>}
 */
async function request(url, init, timeoutMs, cancel) {
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = cancel ? AbortSignal.any([deadline, cancel]) : deadline;
  try {
    return await fetch(url, { ...init, signal, cache: 'no-store', credentials: 'omit' });
  } catch (error) {
    if (cancel?.aborted) throw cancelledFailure();
    if (deadline.aborted || (error instanceof DOMException && error.name === 'TimeoutError')) {
      throw new VeilFailure(CLIENT_ERRORS.CLIENT_TIMEOUT, `The companion did not answer within ${Math.round(timeoutMs / 1000)} s.`);
    }
    throw new VeilFailure(CLIENT_ERRORS.UNREACHABLE, `The Veil companion is not running at ${url.split('/v1')[0]}.`);
  }
}

/** The upload was cancelled here (the person, or a later pick): the page gets nothing. */
const cancelledFailure = () => new VeilFailure(ERROR_CODES.CANCELLED, 'Cancelled: nothing was given to the page.');

/**
 * Turns a companion error response into a VeilFailure.
 * @param {Response} response
 * @returns {Promise<VeilFailure>}
 */
async function failureFrom(response) {
  try {
    const body = await response.json();
    const code = body?.error?.code;
    const message = body?.error?.message;
    if (typeof code === 'string') {
      return new VeilFailure(/** @type {import('../shared/client-errors.js').AnyErrorCode} */ (code), String(message ?? code));
    }
  } catch {
    // Not JSON: fall through to a generic failure below.
  }
  return new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, `The companion answered HTTP ${response.status}.`);
}

/** @returns {Promise<Health>} */
export async function health() {
  const response = await request(`${await baseUrl()}/v1/health`, { method: 'GET' }, HEALTH_TIMEOUT_MS);
  if (!response.ok) throw await failureFrom(response);
  return /** @type {Health} */ (await response.json());
}

/**
 * Exchanges the 6-digit code shown by `veil pair` for a bearer token.
 * @param {string} code
 * @param {string} client
 * @returns {Promise<string>}
 */
export async function pair(code, client) {
  const response = await request(
    `${await baseUrl()}/v1/pair`,
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code, client }) },
    HEALTH_TIMEOUT_MS,
  );
  if (!response.ok) throw await failureFrom(response);
  const body = await response.json();
  if (typeof body?.token !== 'string' || !body.token) {
    throw new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, 'The companion did not return a token.');
  }
  return body.token;
}

/**
 * Whether the stored token is still accepted (GET /v1/token); false when there is none.
 * @returns {Promise<boolean>}
 */
export async function tokenIsValid() {
  const token = await loadToken();
  if (!token) return false;
  const response = await request(
    `${await baseUrl()}/v1/token`,
    { method: 'GET', headers: { Authorization: `Bearer ${token}` } },
    HEALTH_TIMEOUT_MS,
  );
  if (response.status === 401) return false;
  if (!response.ok) throw await failureFrom(response);
  return true;
}

/** Revokes our own token on the companion (POST /v1/unpair); a token it already forgot is fine. */
export async function unpair() {
  const token = await loadToken();
  if (!token) return;
  const response = await request(
    `${await baseUrl()}/v1/unpair`,
    { method: 'POST', headers: { Authorization: `Bearer ${token}` } },
    HEALTH_TIMEOUT_MS,
  );
  if (!response.ok && response.status !== 401) throw await failureFrom(response);
}

// Enrolment requests carry photos (up to 100 MB over loopback) or previews back.
const ENROL_TIMEOUT_MS = 60_000;
// 503 busy on POST /v1/enrol: the previous enrolment is still stopping; wait this long at most.
const ENROL_BUSY_WAIT_MS = 30_000;

/**
 * An authenticated JSON request to the companion (profiles and enrolment).
 * @param {string} method
 * @param {string} path  Under /v1/.
 * @param {{json?: unknown, form?: FormData}} [body]
 * @returns {Promise<any>}
 */
async function authorised(method, path, body = {}) {
  const token = await loadToken();
  if (!token) throw new VeilFailure(CLIENT_ERRORS.NOT_PAIRED, 'Veil is not paired with the companion yet.');
  /** @type {Record<string, string>} */
  const headers = { Authorization: `Bearer ${token}` };
  /** @type {BodyInit | undefined} */
  let payload;
  if (body.form) payload = body.form;
  else if (body.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body.json);
  }
  const url = `${await baseUrl()}/v1/${path}`;
  const deadline = Date.now() + ENROL_BUSY_WAIT_MS;
  for (;;) {
    const response = await request(url, { method, headers, body: payload }, ENROL_TIMEOUT_MS);
    if (response.ok) return response.json();
    const failure = await failureFrom(response);
    const retryAfter = Number(response.headers.get('Retry-After'));
    if (failure.code !== 'busy' || !(retryAfter > 0) || Date.now() + retryAfter * 1000 > deadline) throw failure;
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
  }
}

/** @returns {Promise<{profiles: ProfileSummary[], strengths: StrengthFigures[]}>} */
export function listProfiles() {
  return authorised('GET', 'profiles');
}

/**
 * Sends the photos to enrol one person (POST /v1/enrol); the companion computes in the background.
 * @param {string} name
 * @param {EnrolPhotoUpload[]} photos
 * @returns {Promise<{job: string}>}
 */
export function startEnrolment(name, photos) {
  const form = new FormData();
  photos.forEach((photo, index) => {
    form.append('photo', photo.blob, photo.name);
    if (Number.isInteger(photo.face)) form.append(`face_${index}`, String(photo.face));
  });
  return authorised('POST', `enrol?${new URLSearchParams({ name })}`, { form });
}

/**
 * @param {string} job
 * @returns {Promise<EnrolStatus>}
 */
export function enrolmentStatus(job) {
  return authorised('GET', `enrol/${encodeURIComponent(job)}`);
}

/**
 * @param {string} job
 * @param {Strength} strength
 * @returns {Promise<{profile: ProfileSummary, replaced: number}>}
 */
export function saveEnrolment(job, strength) {
  return authorised('POST', `enrol/${encodeURIComponent(job)}/save`, { json: { strength } });
}

/**
 * @param {string} job
 * @returns {Promise<{job: string, state: string}>}
 */
export function cancelEnrolment(job) {
  return authorised('DELETE', `enrol/${encodeURIComponent(job)}`);
}

/**
 * @param {string} id
 * @param {Strength} strength
 * @returns {Promise<{profile: ProfileSummary}>}
 */
export function setProfileStrength(id, strength) {
  return authorised('PATCH', `profiles/${encodeURIComponent(id)}`, { json: { strength } });
}

/**
 * @param {string} id
 * @returns {Promise<{forgotten: boolean, id: string, name: string}>}
 */
export function forgetProfile(id) {
  return authorised('DELETE', `profiles/${encodeURIComponent(id)}`);
}

/**
 * @param {string | null} value
 * @returns {number | null}
 */
function numberOrNull(value) {
  if (value === null || value === '') return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/**
 * @param {string | null} value
 * @returns {Array<[number, number, number, number]>}
 */
function parseBoxes(value) {
  if (!value) return [];
  try {
    const parsed = JSON.parse(value);
    if (!Array.isArray(parsed)) return [];
    return parsed
      .map((box) => (Array.isArray(box) ? box : [box?.x, box?.y, box?.width, box?.height]))
      .filter((box) => box.length === 4 && box.every((n) => Number.isFinite(n)))
      .map((box) => /** @type {[number, number, number, number]} */ (box.map(Number)));
  } catch {
    return [];
  }
}

const STRENGTHS = ['light', 'medium', 'strong'];

/**
 * X-Veil-Face-Profiles: per face, the enrolled person and their strength, or null.
 * @param {string | null} value
 * @returns {Array<FaceProfile | null>}
 */
function parseProfiles(value) {
  if (!value) return [];
  try {
    const parsed = JSON.parse(value);
    if (!Array.isArray(parsed)) return [];
    return parsed.map((entry) =>
      entry && typeof entry.profile === 'string' && STRENGTHS.includes(entry.strength)
        ? { profile: entry.profile, strength: /** @type {Strength} */ (entry.strength) }
        : null,
    );
  } catch {
    return [];
  }
}

/**
 * @typedef {object} CloakOptions
 * @property {string} [token]  The bearer token, when the caller has it at hand (else read from storage).
 * @property {number} [port]  The companion port, likewise.
 * @property {(stage: string) => void} [mark]  Debug timing marks (see content/timing.js).
 * @property {string} [job]  The X-Veil-Job id for progress and cancel (jobs.js); drawn here when absent.
 * @property {AbortSignal} [signal]  Cancel: aborts the upload and stops the job on the companion.
 * @property {(status: import('./jobs.js').JobStatus | null) => void} [onProgress]  Each poll of the job
 *   (from about a second on), or null when the companion gave no status: a sign of life either way.
 * @property {boolean} [video]  A video: the companion's time-out, not the photo one, bounds it.
 */

/**
 * Sends one photo or video to the companion and returns the cloaked file.
 * @param {Blob | ArrayBuffer} photo  A Blob or File is streamed as it is, never copied first.
 * @param {string} type
 * @param {import('../shared/settings.js').Mode} mode
 * @param {CloakOptions} [options]
 * @returns {Promise<CloakOutcome>}
 */
export async function cloak(photo, type, mode, options = {}) {
  const mark = options.mark ?? (() => {});
  const token = options.token ?? (await loadToken());
  if (!token) {
    throw new VeilFailure(CLIENT_ERRORS.NOT_PAIRED, 'Veil is not paired with the companion yet.');
  }
  const cancel = options.signal;
  if (cancel?.aborted) throw cancelledFailure();
  const job = isJobId(options.job) ? /** @type {string} */ (options.job) : newJobId();
  const query = new URLSearchParams({ mode, keep_metadata: 'false' });
  const deadline = Date.now() + (await cloakTimeoutMs(options.video === true));
  const base = await baseUrl(options.port);
  const target = { base, token, job };
  // Cancel: DELETE the job now (the aborted request closing its connection cancels too,
  // but only once the companion notices; the DELETE stops a job still queued at once).
  const stopJob = () => void cancelJob(target);
  cancel?.addEventListener('abort', stopJob, { once: true });
  const stopWatching = options.onProgress ? watchJob(target, options.onProgress) : () => {};
  try {
    let response;
    for (;;) {
      mark('frame:fetch');
      response = await request(
        `${base}/v1/cloak?${query}`,
        {
          method: 'POST',
          headers: { 'Content-Type': type || 'application/octet-stream', Authorization: `Bearer ${token}`, 'X-Veil-Job': job },
          body: photo,
        },
        Math.max(1000, deadline - Date.now()),
        cancel,
      );
      // 503 busy: the companion says when to come back; wait and retry within our deadline.
      const retryAfter = Number(response.headers.get('Retry-After'));
      if (response.status !== 503 || !(retryAfter > 0) || Date.now() + retryAfter * 1000 > deadline) break;
      const body = await response.json().catch(() => null);
      if (body?.error?.code !== 'busy') break;
      await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
      if (cancel?.aborted) throw cancelledFailure();
    }
    mark('frame:response');
    if (!response.ok) throw await failureFrom(response);
    // A Blob (not an ArrayBuffer): measured faster for 25 MB photos in build/bench/bench_extension.py,
    // and the browser keeps a large one (a video) on disk rather than in this page's memory.
    let body;
    try {
      body = await response.blob();
    } catch (error) {
      if (cancel?.aborted) throw cancelledFailure();
      throw new VeilFailure(CLIENT_ERRORS.TRANSFER_FAILED, `The companion's answer broke off: ${String(error)}`);
    }
    mark('frame:body');
    if (body.size === 0) {
      throw new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, 'The companion returned an empty file.');
    }
    const headers = response.headers;
    return {
      body,
      type: (headers.get('Content-Type') || type).split(';')[0].trim(),
      faces: numberOrNull(headers.get('X-Veil-Faces')) ?? 0,
      seconds: numberOrNull(headers.get('X-Veil-Seconds')),
      ssim: numberOrNull(headers.get('X-Veil-SSIM')),
      faceSsimulacra2: numberOrNull(headers.get('X-Veil-Face-SSIMULACRA2')),
      boxes: parseBoxes(headers.get('X-Veil-Face-Boxes')),
      profiles: parseProfiles(headers.get('X-Veil-Face-Profiles')),
      faceFrames: headers.get('X-Veil-Face-Frames'),
    };
  } finally {
    stopWatching();
    cancel?.removeEventListener('abort', stopJob);
  }
}
