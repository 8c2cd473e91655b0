// The one table of runtime messages the background answers. Each handler
// gets the typed payload and the sender, and returns a JSON-able value;
// failures travel as {error: {code, message, fix}}.
//
// Who may ask what is checked on the sender the browser reports, not on
// anything in the message: content scripts (which run in web pages, so a
// page that compromised its renderer could speak for them) may only ask what
// CONTENT_SCRIPT_MESSAGES lists; everything else is for Veil's own extension
// pages (popup, options, pairing, the confirmation window, the transfer frame).
// "Protect my face" (OPTIONS_PAGE_MESSAGES: enrolled people, enrolment) is
// for the options page alone, as the top frame of its own tab: not even the
// transfer frame, which lives inside web pages, may ask it.

import { CLIENT_ERRORS, VeilFailure, fixFor, veilCommand } from '../shared/client-errors.js';
import {
  isSiteEnabled,
  loadSettings,
  forgetRejectedToken,
  loadToken,
  saveToken,
  siteOf,
  updateSettings,
} from '../shared/settings.js';
import {
  cancelEnrolment,
  enrolmentStatus,
  forgetProfile,
  health,
  listProfiles,
  pair,
  saveEnrolment,
  setProfileStrength,
  startEnrolment,
  tokenIsValid,
  unpair,
} from './companion.js';
import { listPreviews, storePreview } from './previews.js';
import { issueTicket, redeemTicket } from '../shared/tickets.js';
import { answerOriginal, confirmOriginal, originalRequest } from './original-requests.js';

/** @typedef {import('../shared/settings.js').Settings} Settings */
/** @typedef {import('./companion.js').Strength} Strength */
/** @typedef {import('./companion.js').ProfileSummary} ProfileSummary */

/**
 * @typedef {object} EnrolPhotoMessage  One photo of an enrolment, as the options page sends it.
 * @property {string} name
 * @property {string} type
 * @property {string} data  The bytes, base64 (Chrome serialises messages as JSON).
 * @property {number} [face]  The face (0-based, from the left) the person chose in this photo.
 */

/**
 * @typedef {object} CompanionStatus
 * @property {'not_running' | 'not_paired' | 'ready'} state
 * @property {string} message
 * @property {string} fix  The exact command that gets Veil to 'ready', or ''.
 * @property {number} port
 * @property {string} version
 */

/**
 * @typedef {object} Messages  Payload and answer of each message type.
 * @property {{payload: {}, answer: SiteState}} siteState
 * @property {{payload: {}, answer: {ticket: string}}} transferTicket
 * @property {{payload: {percent: number | null}, answer: {}}} progress
 * @property {{payload: {ticket: string}, answer: {tabId: number | null}}} redeemTicket
 * @property {{payload: {tabId: number, preview: import('./previews.js').Preview}, answer: {}}} storePreview
 * @property {{payload: {}, answer: CompanionStatus}} status
 * @property {{payload: {tabId: number}, answer: {site: string, enabled: boolean, settings: Settings,
 *   status: CompanionStatus, previews: import('./previews.js').Preview[]}}} popupState
 * @property {{payload: {host: string, enabled: boolean}, answer: Settings}} setSite
 * @property {{payload: {host: string}, answer: Settings}} forgetSite
 * @property {{payload: {patch: Partial<Pick<Settings, 'port' | 'mode' | 'policy'>>}, answer: Settings}} setSettings
 * @property {{payload: {code: string}, answer: CompanionStatus}} pair
 * @property {{payload: {}, answer: CompanionStatus}} unpair
 * @property {{payload: {names: string[], reason: string}, answer: {confirmed: boolean}}} confirmOriginal
 * @property {{payload: {id: string}, answer: {names: string[], site: string, reason: string}}} originalRequest
 * @property {{payload: {id: string, confirmed: boolean}, answer: {settled: boolean}}} answerOriginal
 * @property {{payload: {}, answer: {token: string}}} frameToken
 * @property {{payload: {token: string}, answer: {}}} forgetToken
 * @property {{payload: {}, answer: {profiles: ProfileSummary[],
 *   strengths: import('./companion.js').StrengthFigures[]}}} listProfiles
 * @property {{payload: {name: string, photos: EnrolPhotoMessage[]}, answer: {job: string}}} startEnrolment
 * @property {{payload: {job: string}, answer: {status: import('./companion.js').EnrolStatus}}} enrolmentStatus
 * @property {{payload: {job: string, strength: Strength}, answer: {profile: ProfileSummary, replaced: number}}} saveEnrolment
 * @property {{payload: {job: string}, answer: {job: string, state: string}}} cancelEnrolment
 * @property {{payload: {id: string, strength: Strength}, answer: {profile: ProfileSummary}}} setProfileStrength
 * @property {{payload: {id: string}, answer: {forgotten: boolean, id: string, name: string}}} forgetProfile
 */

/** @typedef {keyof Messages} MessageType */

/**
 * What content scripts may ask: their own site's switch, a transfer ticket for
 * their own tab, the progress on their own tab's toolbar badge, and to open the confirmation window (whose answer only the
 * person gives, in that window).
 * @type {ReadonlySet<MessageType>}
 */
export const CONTENT_SCRIPT_MESSAGES = new Set(['siteState', 'transferTicket', 'confirmOriginal', 'progress']);

/**
 * What only the options page may ask: who is enrolled, and enrolling ("Protect
 * my face"). A profile is biometric data and enrolling takes minutes of the
 * companion's time; no web page, content script or other Veil page needs either.
 * @type {ReadonlySet<MessageType>}
 */
export const OPTIONS_PAGE_MESSAGES = new Set([
  'listProfiles',
  'startEnrolment',
  'enrolmentStatus',
  'saveEnrolment',
  'cancelEnrolment',
  'setProfileStrength',
  'forgetProfile',
]);

const OPTIONS_PAGE = 'src/options/options.html';

/**
 * Whether the sender is Veil's options page, as the top frame of its tab (or
 * of its own window): its URL, as the browser reports it, is the options page
 * at Veil's own origin. Extension pages are not web-accessible, so no web page
 * can frame it; the frame check is one more lock.
 * @param {chrome.runtime.MessageSender} sender
 */
export function isOptionsPage(sender) {
  if (senderKind(sender) !== 'extension-page') return false;
  let url;
  try {
    url = new URL(sender.url ?? '');
  } catch {
    return false;
  }
  const own = new URL(chrome.runtime.getURL(OPTIONS_PAGE));
  const topFrame = sender.frameId === undefined || sender.frameId === 0;
  return url.origin === own.origin && url.pathname === own.pathname && topFrame;
}

/**
 * Who sent a message: one of Veil's own extension pages, one of its content
 * scripts, or something else (refused).
 * @param {chrome.runtime.MessageSender} sender
 * @returns {'extension-page' | 'content-script' | 'other'}
 */
export function senderKind(sender) {
  if (sender.id !== chrome.runtime.id) return 'other';
  let protocol = '';
  try {
    protocol = new URL(sender.url ?? '').protocol;
  } catch {
    // no URL: not one of ours
  }
  // Only Veil's own pages have an extension URL with Veil's id as sender.id
  // (other extensions' messages arrive on onMessageExternal, not here).
  if (protocol === 'chrome-extension:' || protocol === 'moz-extension:') return 'extension-page';
  return sender.tab ? 'content-script' : 'other';
}

/**
 * @template {MessageType} K
 * @typedef {(payload: Messages[K]['payload'], sender: chrome.runtime.MessageSender) => Promise<Messages[K]['answer']>} Handler
 */

/** @returns {Promise<CompanionStatus>} */
async function companionStatus() {
  const { port } = await loadSettings();
  try {
    const answer = await health();
    if (answer?.name !== 'veil') throw new Error(`Something other than the Veil companion answers on port ${port}.`);
    if (!(await loadToken()) || answer.paired === false || !(await tokenIsValid())) {
      return {
        state: 'not_paired',
        message: `The companion on port ${port} is running, but this browser is not paired with it.`,
        fix: veilCommand('pair', port),
        port,
        version: answer.version,
      };
    }
    return { state: 'ready', message: `Companion ${answer.version} on port ${port} is ready.`, fix: '', port, version: answer.version };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { state: 'not_running', message, fix: veilCommand('serve', port), port, version: '' };
  }
}

/** @type {{[K in MessageType]: Handler<K>}} */
export const handlers = {
  async siteState(_payload, sender) {
    // The site is the top-level page the person sees, also for iframes inside it.
    const host = siteOf(sender.tab?.url ?? sender.url);
    return { host, enabled: host !== '' && isSiteEnabled(await loadSettings(), host) };
  },

  async transferTicket(_payload, sender) {
    // Only content scripts get here (pages cannot message the extension).
    return { ticket: await issueTicket(sender.tab?.id ?? -1) };
  },

  // The percentage of the upload in progress on the toolbar button, for the sender's own tab
  // only ("42%"); null clears it.
  async progress({ percent }, sender) {
    const tabId = sender.tab?.id;
    if (tabId === undefined) return {};
    const value = Number(percent);
    const text = percent === null || !Number.isFinite(value) ? '' : `${Math.max(0, Math.min(100, Math.round(value)))}%`;
    await chrome.action.setBadgeText({ tabId, text });
    if (text) await chrome.action.setBadgeBackgroundColor({ tabId, color: '#2f5fd0' });
    return {};
  },

  confirmOriginal: (payload, sender) => confirmOriginal(payload, sender),

  originalRequest: async ({ id }) => originalRequest(String(id)),

  answerOriginal: async ({ id, confirmed }) => answerOriginal(String(id), confirmed === true),

  // The transfer frame in Firefox has no storage.session (secret-store.js).
  frameToken: async () => ({ token: await loadToken() }),

  // The frame's token was refused: forgotten only if it is still the one stored.
  async forgetToken({ token }) {
    await forgetRejectedToken(String(token ?? ''));
    return {};
  },

  // For the transfer frame where it has no storage.session (Firefox). Runtime
  // messages come only from Veil's own pages and content scripts, never from
  // web pages, so this does not open the frame to them.
  redeemTicket: async ({ ticket }) => ({ tabId: await redeemTicket(ticket) }),

  // Likewise for a preview the frame built (Firefox).
  async storePreview({ tabId, preview }) {
    await storePreview(Number(tabId), preview);
    return {};
  },

  status: () => companionStatus(),

  async popupState({ tabId }) {
    const tab = await chrome.tabs.get(tabId);
    const settings = await loadSettings();
    const site = siteOf(tab.url);
    return {
      site,
      enabled: site !== '' && isSiteEnabled(settings, site),
      settings,
      status: await companionStatus(),
      previews: await listPreviews(tabId),
    };
  },

  setSite: ({ host, enabled }) =>
    updateSettings((settings) => ({ ...settings, sites: { ...settings.sites, [host]: Boolean(enabled) } })),

  forgetSite: ({ host }) =>
    updateSettings((settings) => {
      const sites = { ...settings.sites };
      delete sites[host];
      return { ...settings, sites };
    }),

  setSettings: ({ patch }) => updateSettings((settings) => ({ ...settings, ...patch })),

  async pair({ code }) {
    const digits = String(code).replace(/\s+/g, '');
    if (!/^\d{6}$/.test(digits)) {
      throw new VeilFailure('pairing_code_invalid', 'The pairing code is the 6 digits printed by `veil pair`.');
    }
    const browser = navigator.userAgent.includes('Firefox/') ? 'Firefox' : 'Chrome';
    const client = `Veil for ${browser} ${chrome.runtime.getManifest().version}`;
    await saveToken(await pair(digits, client));
    return companionStatus();
  },

  async unpair() {
    try {
      await unpair();
    } finally {
      await saveToken('');
    }
    return companionStatus();
  },

  // "Protect my face" (options page only: OPTIONS_PAGE_MESSAGES). The token
  // stays here; the options page never holds it.
  listProfiles: () => listProfiles(),

  async startEnrolment({ name, photos }) {
    if (!Array.isArray(photos)) throw new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, 'No photos to enrol.');
    const uploads = photos.map((photo, index) => ({
      name: String(photo?.name || `photo ${index + 1}`),
      blob: new Blob([/** @type {BlobPart} */ (veilWire.decode(String(photo?.data ?? '')))], {
        type: String(photo?.type || 'application/octet-stream'),
      }),
      face: Number.isInteger(photo?.face) ? photo.face : undefined,
    }));
    const { job } = await startEnrolment(String(name ?? ''), uploads);
    return { job };
  },

  // Wrapped: the status has an `error` field of its own, which must not read as this message failing.
  enrolmentStatus: async ({ job }) => ({ status: await enrolmentStatus(String(job)) }),

  saveEnrolment: ({ job, strength }) => saveEnrolment(String(job), strength),

  cancelEnrolment: ({ job }) => cancelEnrolment(String(job)),

  setProfileStrength: ({ id, strength }) => setProfileStrength(String(id), strength),

  forgetProfile: ({ id }) => forgetProfile(String(id)),
};

/**
 * Routes one runtime message to its handler.
 * @param {unknown} message
 * @param {chrome.runtime.MessageSender} sender
 * @returns {Promise<unknown>}
 */
export async function dispatch(message, sender) {
  const { type, payload } = /** @type {{type?: unknown, payload?: unknown}} */ (message ?? {});
  if (typeof type !== 'string' || !Object.hasOwn(handlers, type)) {
    return { error: { code: CLIENT_ERRORS.BAD_RESPONSE, message: `Unknown message ${String(type)}`, fix: '' } };
  }
  const kind = senderKind(sender);
  const asked = /** @type {MessageType} */ (type);
  const refused =
    kind === 'other' ||
    (kind === 'content-script' && !CONTENT_SCRIPT_MESSAGES.has(asked)) ||
    (OPTIONS_PAGE_MESSAGES.has(asked) && !isOptionsPage(sender));
  if (refused) {
    return { error: { code: CLIENT_ERRORS.FORBIDDEN_SENDER, message: `Veil does not answer ${type} from there.`, fix: '' } };
  }
  const handler = /** @type {Handler<MessageType>} */ (handlers[/** @type {MessageType} */ (type)]);
  try {
    return await handler(/** @type {any} */ (payload ?? {}), sender);
  } catch (error) {
    const failure = error instanceof VeilFailure ? error : new VeilFailure(CLIENT_ERRORS.BAD_RESPONSE, String(error));
    const { port } = await loadSettings();
    return { error: { code: failure.code, message: failure.message, fix: fixFor(failure.code, port) } };
  }
}
