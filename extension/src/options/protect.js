// "Protect my face" on the options page: who is enrolled (strength, Forget),
// and enrolling from 3-20 photos: progress while the companion computes, the
// question "which face is you?" when a photo shows several, then each
// strength's look on the person's own photo with what it achieved in Veil's
// measurements, and Save. Everything goes through the background
// (handlers.js), which answers these messages from this page alone and keeps
// the token; this page never holds it, nor any profile data beyond names.

import '../shared/wire.js';
import { ask } from '../shared/messaging.js';

/** @typedef {import('../background/companion.js').Strength} Strength */
/** @typedef {import('../background/companion.js').StrengthFigures} StrengthFigures */
/** @typedef {import('../background/companion.js').EnrolStatus} EnrolStatus */
/** @typedef {import('../background/companion.js').ProfileSummary} ProfileSummary */
/** @typedef {import('../background/handlers.js').EnrolPhotoMessage} EnrolPhotoMessage */

const MIN_PHOTOS = 3;
const MAX_PHOTOS = 20;
// Enrolment needs the face, not 50 megapixels: larger photos travel shrunk to this long
// side (the previews' "face at 100%" is then at this size too).
const MAX_EDGE = 2048;
// Photos travel to the background as one message (JSON in Chrome, 64 MiB at most).
const MAX_TOTAL_BYTES = 45 * 1024 * 1024;
const POLL_MS = 1000;
const JOB_KEY = 'enrolJob';
const STRENGTH_NAMES = { light: 'Light', medium: 'Medium', strong: 'Strong' };

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @typedef {object} Selection  The photos being enrolled, kept to send again with a face choice.
 * @property {File[]} files
 * @property {Map<File, Promise<EnrolPhotoMessage>>} prepared
 * @property {Map<number, number>} faces  Photo index -> chosen face.
 * @property {string} name
 */

/** @type {Selection | null} */
let selection = null;
/** @type {string | null} */
let currentJob = null;

/**
 * @param {'idle' | 'preparing' | 'running' | 'choose' | 'done' | 'failed' | 'saved' | 'cancelled'} state
 * @param {string} [message]
 * @param {'ok' | 'bad' | ''} [tone]
 */
function show(state, message = '', tone = '') {
  byId('protect').dataset.state = state;
  byId('enrol-run').hidden = state !== 'running' && state !== 'preparing';
  byId('enrol-choose').hidden = state !== 'choose';
  byId('enrol-result').hidden = state !== 'done';
  /** @type {HTMLButtonElement} */ (byId('enrol-start')).disabled = state === 'running' || state === 'preparing';
  const line = byId('enrol-message');
  line.textContent = message;
  line.className = tone;
}

/**
 * @param {unknown} error
 * @returns {string}
 */
function explain(error) {
  const failure = /** @type {Error & {fix?: string}} */ (error);
  return `${failure.message ?? String(error)}${failure.fix ? ` ${failure.fix}` : ''}`;
}

// -- enrolled people ------------------------------------------------------------------

/** @param {ProfileSummary[]} profiles */
function renderProfiles(profiles) {
  const rows = profiles.map((profile) => {
    const row = document.createElement('tr');
    row.dataset.profileId = profile.id;
    const name = document.createElement('td');
    name.className = 'name';
    name.textContent = profile.name;
    const strength = document.createElement('td');
    const photos = document.createElement('td');
    const created = document.createElement('td');
    if (profile.unusable) {
      strength.className = 'unusable';
      strength.colSpan = 3;
      strength.textContent = `Cannot be used: ${profile.unusable}`;
    } else {
      const select = document.createElement('select');
      select.className = 'strength';
      select.setAttribute('aria-label', `Strength for ${profile.name}`);
      for (const value of /** @type {Strength[]} */ (['light', 'medium', 'strong'])) {
        select.append(new Option(STRENGTH_NAMES[value], value, false, value === profile.strength));
      }
      select.addEventListener('change', async () => {
        try {
          await ask('setProfileStrength', { id: profile.id, strength: /** @type {Strength} */ (select.value) });
          show('idle', `${profile.name}: strength ${select.value}. It applies from the next photo.`, 'ok');
        } catch (error) {
          show('failed', explain(error), 'bad');
        }
        await refreshProfiles();
      });
      strength.append(select);
      photos.textContent = String(profile.photos ?? '');
      created.textContent = profile.created ? new Date(profile.created * 1000).toLocaleDateString() : '';
    }
    const actions = document.createElement('td');
    const forget = document.createElement('button');
    forget.type = 'button';
    forget.className = 'forget';
    forget.textContent = 'Forget';
    forget.addEventListener('click', async () => {
      const sure = confirm(
        `Forget ${profile.name}? Veil deletes their profile from this computer; their face then gets only the default cloak.`,
      );
      if (!sure) return;
      try {
        await ask('forgetProfile', { id: profile.id });
        show('idle', `Forgot ${profile.name}: the profile is deleted.`, 'ok');
      } catch (error) {
        show('failed', explain(error), 'bad');
      }
      await refreshProfiles();
    });
    actions.append(forget);
    row.append(name, ...(profile.unusable ? [strength] : [strength, photos, created]), actions);
    return row;
  });
  /** @type {HTMLElement} */ (byId('profiles').querySelector('tbody')).replaceChildren(...rows);
  byId('profiles').hidden = rows.length === 0;
  byId('no-profiles').hidden = rows.length > 0;
}

export async function refreshProfiles() {
  const error = byId('profiles-error');
  try {
    const { profiles } = await ask('listProfiles', {});
    renderProfiles(profiles);
    error.hidden = true;
  } catch (failure) {
    renderProfiles([]);
    byId('no-profiles').hidden = true;
    error.hidden = false;
    error.textContent = `Cannot list who is enrolled: ${explain(failure)}`;
  }
  byId('protect').dataset.profilesReady = 'true';
}

// -- enrolling --------------------------------------------------------------------------

/**
 * The photo as it travels: shrunk when larger than MAX_EDGE (orientation applied),
 * else as picked. A photo this browser cannot decode (HEIC) goes as it is: the
 * companion decodes it.
 * @param {File} file
 * @returns {Promise<EnrolPhotoMessage>}
 */
async function preparePhoto(file) {
  /** @type {Blob} */
  let blob = file;
  try {
    const bitmap = await createImageBitmap(file);
    try {
      const long = Math.max(bitmap.width, bitmap.height);
      if (long > MAX_EDGE) {
        const scale = MAX_EDGE / long;
        const canvas = new OffscreenCanvas(Math.round(bitmap.width * scale), Math.round(bitmap.height * scale));
        const context = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d'));
        context.imageSmoothingQuality = 'high';
        context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        blob = await canvas.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
      }
    } finally {
      bitmap.close();
    }
  } catch {
    // Not decodable here: sent as picked.
  }
  const bytes = new Uint8Array(await blob.arrayBuffer());
  return { name: file.name, type: blob.type || file.type, data: veilWire.encode(bytes) };
}

/** @param {Selection} chosen */
async function photosToSend(chosen) {
  const photos = [];
  for (const [index, file] of chosen.files.entries()) {
    let prepared = chosen.prepared.get(file);
    if (!prepared) {
      prepared = preparePhoto(file);
      chosen.prepared.set(file, prepared);
    }
    const photo = { ...(await prepared) };
    const face = chosen.faces.get(index);
    if (face !== undefined) photo.face = face;
    photos.push(photo);
  }
  return photos;
}

async function startEnrolment() {
  if (!selection) return;
  const count = selection.files.length;
  if (count < MIN_PHOTOS || count > MAX_PHOTOS) {
    show('failed', `Pick ${MIN_PHOTOS} to ${MAX_PHOTOS} photos of yourself (you picked ${count}).`, 'bad');
    return;
  }
  show('preparing', 'Sending your photos to the companion…');
  setProgress(0);
  try {
    const photos = await photosToSend(selection);
    const total = photos.reduce((sum, photo) => sum + photo.data.length * 0.75, 0);
    if (total > MAX_TOTAL_BYTES) {
      show('failed', 'These photos are too large together: pick fewer or smaller ones.', 'bad');
      return;
    }
    const { job } = await ask('startEnrolment', { name: selection.name, photos });
    await follow(job);
  } catch (error) {
    show('failed', explain(error), 'bad');
  }
}

/** @param {number} share */
function setProgress(share) {
  /** @type {HTMLProgressElement} */ (byId('enrol-progress')).value = share;
  byId('enrol-percent').textContent = `${Math.round(share * 100)}%`;
}

/**
 * Follows a job until it stops running, then shows what came of it.
 * @param {string} job
 */
async function follow(job) {
  currentJob = job;
  await chrome.storage.session.set({ [JOB_KEY]: job });
  show('running', 'Computing your personal cloak in the companion (about half a minute on a two-core computer).');
  /** @type {EnrolStatus} */
  let status;
  for (;;) {
    try {
      ({ status } = await ask('enrolmentStatus', { job }));
    } catch (error) {
      await forgetJob();
      show('failed', explain(error), 'bad');
      return;
    }
    if (currentJob !== job) return; // cancelled or replaced meanwhile
    setProgress(status.progress);
    if (status.state !== 'running') break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (status.state === 'done') {
    renderStrengths(status);
    show('done', 'Your cloak is ready. Choose a strength and save it, or discard it.');
  } else if (status.state === 'failed' && status.error?.code === 'enrol_face_ambiguous' && selection) {
    await forgetJob();
    renderChoice(status);
  } else if (status.state === 'failed') {
    await forgetJob();
    show('failed', status.error?.message ?? 'The enrolment failed.', 'bad');
  } else {
    await forgetJob();
    show('cancelled', 'Enrolment cancelled; nothing was saved.');
  }
}

async function forgetJob() {
  currentJob = null;
  await chrome.storage.session.remove(JOB_KEY);
}

/** @param {EnrolStatus} status */
function renderChoice(status) {
  const error = /** @type {import('../background/companion.js').EnrolError} */ (status.error);
  const index = error.photo ?? 0;
  const file = selection?.files[index];
  byId('enrol-choose-text').textContent =
    `${file?.name ?? `Photo ${index + 1}`} shows ${error.faces?.length ?? 'several'} faces, and Veil cannot tell ` +
    'which one is you. Which one is you?';
  const buttons = (error.faces ?? []).map((face, k) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.face = String(k);
    if (face.thumbnail) {
      const image = document.createElement('img');
      image.src = face.thumbnail;
      image.alt = `Face ${k + 1}`;
      button.append(image);
    }
    button.append(`Face ${k + 1}, from the left`);
    button.addEventListener('click', () => {
      selection?.faces.set(index, k);
      void startEnrolment();
    });
    return button;
  });
  byId('enrol-faces').replaceChildren(...buttons);
  byId('enrol-drop-photo').onclick = () => {
    if (!selection) return;
    selection.files.splice(index, 1);
    /** @type {Map<number, number>} */
    const shifted = new Map();
    for (const [photo, face] of selection.faces) {
      if (photo !== index) shifted.set(photo > index ? photo - 1 : photo, face);
    }
    selection.faces = shifted;
    void startEnrolment();
  };
  show('choose', '');
}

/**
 * @param {string} src
 * @param {string} caption
 * @param {'feed' | 'face'} kind
 */
function figure(src, caption, kind) {
  const element = document.createElement('figure');
  element.className = kind;
  const image = document.createElement('img');
  image.src = src;
  image.alt = caption;
  const label = document.createElement('figcaption');
  label.textContent = caption;
  element.append(image, label);
  return element;
}

/**
 * @param {StrengthFigures} figures
 * @param {StrengthFigures | undefined} recommended
 */
function strengthNote(figures, recommended) {
  if (figures !== recommended) return '';
  const measured = typeof (/** @type {any} */ (figures).protection_worst) === 'number';
  if (!measured) return ' · preselected: no strength is measured in this build, so Veil picks the strongest';
  return (/** @type {any} */ (figures).reaches_target)
    ? ' · preselected: the least visible strength that reached Veil\u2019s protection target in its measurements'
    : ' · preselected: no strength reached Veil\u2019s protection target against every recogniser it measured; this is the most Veil offers';
}

/** @param {EnrolStatus} status */
function renderStrengths(status) {
  const previews = status.previews ?? {};
  const original = previews.original;
  const recommended = status.strengths.find((figures) => figures.recommended);
  const cards = status.strengths.map((figures) => {
    const card = document.createElement('label');
    card.className = `strength${figures === recommended ? ' recommended' : ''}`;
    card.dataset.strength = figures.strength;
    const radio = document.createElement('input');
    radio.type = 'radio';
    radio.name = 'strength';
    radio.value = figures.strength;
    radio.checked = figures === recommended;
    const head = document.createElement('span');
    head.className = 'head';
    head.textContent = `${STRENGTH_NAMES[figures.strength]}${strengthNote(figures, recommended)}`;
    const description = document.createElement('div');
    description.className = 'description';
    const measured = typeof (/** @type {any} */ (figures).protection_worst) === 'number';
    description.textContent = measured
      ? figures.description
      : 'Not measured in this build: Veil cannot tell you yet how much this strength protects.';
    card.append(radio, ' ', head, description);
    const views = previews[figures.strength];
    if (original && views) {
      const feed = document.createElement('div');
      feed.className = 'compare';
      feed.append(figure(original.feed, 'Feed size, without', 'feed'), figure(views.feed, `Feed size, ${figures.strength}`, 'feed'));
      const face = document.createElement('div');
      face.className = 'compare';
      face.append(figure(original.face, 'Face at 100%, without', 'face'), figure(views.face, `Face at 100%, ${figures.strength}`, 'face'));
      card.append(feed, face);
    }
    return card;
  });
  byId('strength-picker').replaceChildren(...cards);
}

async function save() {
  const job = currentJob;
  const chosen = /** @type {HTMLInputElement | null} */ (document.querySelector('input[name=strength]:checked'));
  if (!job || !chosen) return;
  try {
    const { profile } = await ask('saveEnrolment', { job, strength: /** @type {Strength} */ (chosen.value) });
    await forgetJob();
    selection = null;
    /** @type {HTMLInputElement} */ (byId('enrol-photos')).value = '';
    show(
      'saved',
      `Saved. From now on, faces Veil recognises as ${profile.name} get their personal cloak at ${profile.strength}; ` +
        'the toolbar popup says so for each photo.',
      'ok',
    );
  } catch (error) {
    show('failed', explain(error), 'bad');
  }
  await refreshProfiles();
}

async function cancel() {
  const job = currentJob;
  await forgetJob();
  if (job) {
    try {
      await ask('cancelEnrolment', { job });
    } catch {
      // Expired or gone already: nothing left to cancel.
    }
  }
  show('cancelled', 'Enrolment cancelled; nothing was saved.');
}

/**
 * Wires the section and starts filling it (without waiting: a companion that is
 * slow to answer must not hold up the rest of the page); returns the function
 * that refreshes the list of enrolled people.
 * @returns {() => Promise<void>}
 */
export function setUpProtect() {
  show('idle');
  const photos = /** @type {HTMLInputElement} */ (byId('enrol-photos'));
  const name = /** @type {HTMLInputElement} */ (byId('enrol-name'));
  byId('enrol-form').addEventListener('submit', (event) => {
    event.preventDefault();
    selection = { files: Array.from(photos.files ?? []), prepared: new Map(), faces: new Map(), name: name.value.trim() };
    void startEnrolment();
  });
  byId('enrol-cancel').addEventListener('click', () => void cancel());
  byId('enrol-discard').addEventListener('click', () => void cancel());
  byId('enrol-save').addEventListener('click', () => void save());
  void refreshProfiles();
  // A job started before this page was (re)opened: follow it again.
  void chrome.storage.session.get(JOB_KEY).then((stored) => {
    const job = stored[JOB_KEY];
    if (typeof job === 'string' && job) void follow(job);
  });
  return refreshProfiles;
}
