// The toolbar popup: companion state, this site's switch, mode and site
// policy, and before/after previews of the photos (and a frame of the videos)
// protected in this tab.

import { ask } from '../shared/messaging.js';
import { renderStatus } from '../shared/status-view.js';

const AMPLIFY = 15;

/** @param {string} id */
const byId = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** The tab the popup is about: the active one, or ?tab=<id> when opened as a page. */
async function currentTabId() {
  const fromQuery = Number(new URLSearchParams(location.search).get('tab'));
  if (Number.isInteger(fromQuery) && fromQuery > 0) return fromQuery;
  const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
  return tab?.id ?? -1;
}

/**
 * @param {string} url
 * @returns {Promise<HTMLImageElement>}
 */
function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = url;
  });
}

/**
 * Draws `after`, or |after - before| × AMPLIFY when amplifying, into a canvas.
 * @param {HTMLImageElement} before
 * @param {HTMLImageElement} after
 * @param {boolean} amplify
 */
function drawAfter(before, after, amplify) {
  const canvas = document.createElement('canvas');
  canvas.width = after.naturalWidth;
  canvas.height = after.naturalHeight;
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  context.drawImage(after, 0, 0);
  if (!amplify) return canvas;
  const a = context.getImageData(0, 0, canvas.width, canvas.height);
  const scratch = document.createElement('canvas');
  scratch.width = canvas.width;
  scratch.height = canvas.height;
  const scratchContext = /** @type {CanvasRenderingContext2D} */ (scratch.getContext('2d'));
  scratchContext.drawImage(before, 0, 0, canvas.width, canvas.height);
  const b = scratchContext.getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < a.data.length; i += 4) {
    for (let c = 0; c < 3; c += 1) a.data[i + c] = Math.min(255, Math.abs(a.data[i + c] - b.data[i + c]) * AMPLIFY);
    a.data[i + 3] = 255;
  }
  context.putImageData(a, 0, 0);
  return canvas;
}

/** @param {HTMLImageElement} image */
function drawPlain(image) {
  const canvas = document.createElement('canvas');
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d')).drawImage(image, 0, 0);
  return canvas;
}

/**
 * @param {HTMLCanvasElement} left
 * @param {string} leftCaption
 * @param {HTMLCanvasElement} right
 * @param {string} rightCaption
 */
function sideBySide(left, leftCaption, right, rightCaption) {
  const pair = document.createElement('div');
  pair.className = 'pair';
  for (const [canvas, caption] of /** @type {Array<[HTMLCanvasElement, string]>} */ ([[left, leftCaption], [right, rightCaption]])) {
    const figure = document.createElement('figure');
    const label = document.createElement('figcaption');
    label.textContent = caption;
    figure.append(canvas, label);
    pair.append(figure);
  }
  return pair;
}

/**
 * One line per kind of cloak the photo's faces got: "Recognised as me:
 * personal cloak, medium" for each enrolled person recognised, and the
 * default cloak for the others (X-Veil-Face-Profiles, in previews.js).
 * @param {import('../background/previews.js').Preview} preview
 * @returns {HTMLElement}
 */
function recognition(preview) {
  const line = document.createElement('div');
  line.className = 'recognition';
  const profiles = preview.profiles ?? [];
  const recognised = profiles.filter((entry) => entry !== null);
  for (const entry of recognised) {
    const part = document.createElement('span');
    part.className = 'personal';
    part.textContent = `Recognised as ${entry.profile}: personal cloak, ${entry.strength}. `;
    line.append(part);
  }
  const others = Math.max(0, preview.faces - recognised.length);
  if (others > 0) {
    const part = document.createElement('span');
    part.className = 'default';
    part.textContent =
      recognised.length === 0
        ? `Not recognised as an enrolled person: default cloak${preview.faces === 1 ? '' : ` on all ${preview.faces} faces`} (protects little).`
        : `${others} other face${others === 1 ? '' : 's'}: default cloak (protects little).`;
    line.append(part);
  }
  return line;
}

/**
 * @param {import('../background/previews.js').Preview[]} previews
 * @param {boolean} amplify
 */
async function renderPreviews(previews, amplify) {
  const container = byId('previews');
  if (previews.length === 0) {
    container.replaceChildren(Object.assign(document.createElement('p'), { className: 'muted', textContent: 'No photo cloaked on this tab yet.' }));
    return;
  }
  const cards = [];
  for (const preview of previews) {
    const [before, after, zoomBefore, zoomAfter] = await Promise.all(
      [preview.before, preview.after, preview.zoomBefore, preview.zoomAfter].map(loadImage),
    );
    const card = document.createElement('article');
    card.className = 'preview';
    const name = document.createElement('div');
    name.className = 'name';
    name.textContent = preview.name;
    const stats = document.createElement('div');
    stats.className = 'stats';
    // An animated image's answer counts face-frames as a video's does; the preview shows its
    // first frame (what createImageBitmap decodes).
    const animated = !preview.video && Boolean(preview.faceFrames);
    const parts = [
      preview.video ? `video, frame at ${(preview.frameAt ?? 0).toFixed(1)} s` : '',
      animated ? 'animated image, first frame' : '',
      `${preview.faces} face${preview.faces === 1 ? '' : 's'} cloaked`,
      preview.faceFrames ? `face-frames cloaked ${preview.faceFrames}` : '',
      preview.ssim === null ? '' : `SSIM ${preview.ssim.toFixed(4)}`,
      typeof preview.faceSsimulacra2 !== 'number' ? '' : `face SSIMULACRA2 ${preview.faceSsimulacra2.toFixed(1)}`,
      preview.seconds === null ? '' : `${preview.seconds.toFixed(2)} s in the companion`,
      `${preview.totalSeconds.toFixed(2)} s in all`,
      `${preview.width}×${preview.height}`,
    ];
    stats.textContent = parts.filter(Boolean).join(' · ');
    const afterLabel = amplify ? `|after − before| × ${AMPLIFY}` : 'after';
    const zoomLabel = preview.zoomSource === 'companion' ? 'face' : 'changed region';
    const framed = preview.video || animated;
    const beforeLabel = framed ? 'frame before' : 'before';
    const overview = sideBySide(drawPlain(before), beforeLabel, drawAfter(before, after, amplify), framed ? `frame ${afterLabel}` : afterLabel);
    card.dataset.kind = preview.video ? 'video' : animated ? 'animation' : 'photo';
    const zoom = sideBySide(drawPlain(zoomBefore), `${zoomLabel}, before`, drawAfter(zoomBefore, zoomAfter, amplify), `${zoomLabel}, ${afterLabel}`);
    zoom.classList.add('zoom');
    card.append(name, stats, recognition(preview), overview, zoom);
    cards.push(card);
  }
  container.replaceChildren(...cards);
}

async function main() {
  const tabId = await currentTabId();
  const state = await ask('popupState', { tabId });
  renderStatus(byId('status'), state.status);

  const siteSwitch = /** @type {HTMLInputElement} */ (byId('site-enabled'));
  const siteName = byId('site-name');
  if (state.site) {
    siteName.textContent = state.site;
    siteSwitch.checked = state.enabled;
    siteSwitch.addEventListener('change', () => {
      void ask('setSite', { host: state.site, enabled: siteSwitch.checked });
    });
  } else {
    siteName.textContent = 'this page (Veil does not run here)';
    siteSwitch.disabled = true;
  }

  const mode = /** @type {HTMLSelectElement} */ (byId('mode'));
  mode.value = state.settings.mode;
  mode.addEventListener('change', () => {
    void ask('setSettings', { patch: { mode: /** @type {import('../shared/settings.js').Mode} */ (mode.value) } });
  });
  const policy = /** @type {HTMLSelectElement} */ (byId('policy'));
  policy.value = state.settings.policy;
  policy.addEventListener('change', async () => {
    const settings = await ask('setSettings', { patch: { policy: /** @type {'all' | 'listed'} */ (policy.value) } });
    // The site switch shows the effective state, which the policy can change.
    if (state.site) {
      const choice = settings.sites[state.site];
      siteSwitch.checked = typeof choice === 'boolean' ? choice : settings.policy === 'all';
    }
  });

  byId('open-options').addEventListener('click', (event) => {
    event.preventDefault();
    void chrome.runtime.openOptionsPage();
  });
  byId('open-protect').addEventListener('click', (event) => {
    event.preventDefault();
    void chrome.tabs.create({ url: chrome.runtime.getURL('src/options/options.html#protect') });
  });
  byId('open-pairing').addEventListener('click', (event) => {
    event.preventDefault();
    void chrome.tabs.create({ url: chrome.runtime.getURL('src/pairing/pairing.html') });
  });

  const amplify = /** @type {HTMLInputElement} */ (byId('amplify'));
  amplify.addEventListener('change', () => void renderPreviews(state.previews, amplify.checked));
  await renderPreviews(state.previews, amplify.checked);
  document.body.dataset.ready = 'true';
}

main().catch((error) => {
  byId('status').textContent = `Veil: ${error instanceof Error ? error.message : String(error)}`;
  document.body.dataset.ready = 'error';
});
