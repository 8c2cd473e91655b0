// Before/after previews for the popup: the last photos cloaked in each tab.
// Kept in chrome.storage.session (survives the worker being killed, cleared
// when the browser closes), bounded per tab, and built after the page already
// has its file, so they never add latency to an upload.

const MAX_PER_TAB = 3;
const OVERVIEW_EDGE = 360;
const ZOOM_EDGE = 240;

/**
 * @typedef {object} Preview
 * @property {string} id
 * @property {string} name
 * @property {number} at  Epoch milliseconds.
 * @property {number} width
 * @property {number} height
 * @property {number} faces
 * @property {Array<import('./companion.js').FaceProfile | null>} [profiles]  Per face: the enrolled person it was
 *   recognised as and the strength of their personal cloak, or null (the default cloak).
 * @property {number | null} ssim
 * @property {number | null} [faceSsimulacra2]  The most visible face's SSIMULACRA2.
 * @property {number | null} seconds  The companion's own time.
 * @property {number} totalSeconds  From the page handing over the file to it getting the cloak.
 * @property {string} before  PNG data URL, whole photo, downscaled.
 * @property {string} after
 * @property {string} zoomBefore  PNG data URL of the face region at full resolution (or scaled down to fit).
 * @property {string} zoomAfter
 * @property {[number, number, number, number]} zoomBox  x, y, w, h in photo pixels.
 * @property {'companion' | 'difference'} zoomSource  Where the zoom box came from.
 */

/** @param {number} tabId */
const keyFor = (tabId) => `previews:${tabId}`;

/**
 * @param {number} tabId
 * @returns {Promise<Preview[]>}
 */
export async function listPreviews(tabId) {
  const key = keyFor(tabId);
  const stored = await chrome.storage.session.get(key);
  const list = stored[key];
  return Array.isArray(list) ? list : [];
}

/** @param {number} tabId */
export async function forgetTab(tabId) {
  await chrome.storage.session.remove(keyFor(tabId));
}

/**
 * @param {OffscreenCanvas} canvas
 * @returns {Promise<string>}
 */
async function toDataUrl(canvas) {
  const blob = await canvas.convertToBlob({ type: 'image/png' });
  const bytes = new Uint8Array(await blob.arrayBuffer());
  return `data:image/png;base64,${veilWire.encode(bytes)}`;
}

/**
 * Draws a region of a bitmap scaled into a canvas of at most `edge` pixels on its long side.
 * @param {ImageBitmap} bitmap
 * @param {[number, number, number, number]} box
 * @param {number} edge
 * @returns {OffscreenCanvas}
 */
function drawRegion(bitmap, box, edge) {
  const [x, y, w, h] = box;
  const scale = Math.min(1, edge / Math.max(w, h));
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale)));
  const context = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d'));
  context.imageSmoothingQuality = 'high';
  context.drawImage(bitmap, x, y, w, h, 0, 0, canvas.width, canvas.height);
  return canvas;
}

/**
 * Without face boxes from the companion, the face is where the cloak changed
 * the photo: the bounding box of the strongest differences on a small copy.
 * @param {ImageBitmap} before
 * @param {ImageBitmap} after
 * @returns {[number, number, number, number] | null}
 */
function changedRegion(before, after) {
  const edge = 256;
  const scale = Math.min(1, edge / Math.max(before.width, before.height));
  const w = Math.max(1, Math.round(before.width * scale));
  const h = Math.max(1, Math.round(before.height * scale));
  /** @param {ImageBitmap} bitmap */
  const pixels = (bitmap) => {
    const canvas = new OffscreenCanvas(w, h);
    const context = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d'));
    context.drawImage(bitmap, 0, 0, w, h);
    return context.getImageData(0, 0, w, h).data;
  };
  const a = pixels(before);
  const b = pixels(after);
  const diff = new Float32Array(w * h);
  let max = 0;
  for (let i = 0; i < w * h; i += 1) {
    const d = Math.abs(a[i * 4] - b[i * 4]) + Math.abs(a[i * 4 + 1] - b[i * 4 + 1]) + Math.abs(a[i * 4 + 2] - b[i * 4 + 2]);
    diff[i] = d;
    if (d > max) max = d;
  }
  if (max === 0) return null;
  const threshold = max * 0.35;
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      if (diff[y * w + x] >= threshold) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  return [x0 / scale, y0 / scale, (x1 - x0 + 1) / scale, (y1 - y0 + 1) / scale];
}

/**
 * A square-ish box around `box` with some margin, clamped to the image.
 * @param {[number, number, number, number]} box
 * @param {number} width
 * @param {number} height
 * @returns {[number, number, number, number]}
 */
function padBox(box, width, height) {
  const [x, y, w, h] = box;
  const side = Math.max(w, h) * 1.3;
  const cx = x + w / 2;
  const cy = y + h / 2;
  const x0 = Math.max(0, Math.round(cx - side / 2));
  const y0 = Math.max(0, Math.round(cy - side / 2));
  const x1 = Math.min(width, Math.round(cx + side / 2));
  const y1 = Math.min(height, Math.round(cy + side / 2));
  return [x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0)];
}

/**
 * A photo the browser cannot show (HEIC in Chromium and Firefox): the preview
 * is skipped, quietly; the upload itself is not affected.
 */
export class PreviewSkipped extends Error {}

/**
 * @param {Blob} photo
 * @returns {Promise<ImageBitmap>}
 */
async function decode(photo) {
  try {
    return await createImageBitmap(photo);
  } catch (error) {
    throw new PreviewSkipped(`this browser cannot decode ${photo.type || 'this format'}: ${String(error)}`);
  }
}

/**
 * Builds and stores the preview of one cloaked photo.
 * @param {number} tabId
 * @param {PreviewSource} item
 */
export async function recordPreview(tabId, item) {
  await storePreview(tabId, await buildPreview(item));
}

/**
 * @typedef {{name: string, original: Blob, cloaked: Blob, faces: number, ssim: number | null, faceSsimulacra2?: number | null,
 *   seconds: number | null, totalSeconds: number, boxes: Array<[number, number, number, number]>,
 *   profiles?: Array<import('./companion.js').FaceProfile | null>}} PreviewSource
 */

/**
 * Builds the preview of one cloaked photo (no storage: the transfer frame
 * builds it where it has the photos, the background may store it).
 * @param {PreviewSource} item
 * @returns {Promise<Preview>}
 */
export async function buildPreview(item) {
  const before = await decode(item.original);
  const after = await decode(item.cloaked);
  try {
    const full = /** @type {[number, number, number, number]} */ ([0, 0, before.width, before.height]);
    const largestBox = [...item.boxes].sort((p, q) => q[2] * q[3] - p[2] * p[3])[0];
    const changed = largestBox ? null : changedRegion(before, after);
    const zoomSource = largestBox ? 'companion' : 'difference';
    const zoomBox = padBox(largestBox ?? changed ?? full, before.width, before.height);
    /** @type {Preview} */
    const preview = {
      id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
      name: item.name,
      at: Date.now(),
      width: before.width,
      height: before.height,
      faces: item.faces,
      profiles: item.profiles ?? [],
      ssim: item.ssim,
      faceSsimulacra2: item.faceSsimulacra2 ?? null,
      seconds: item.seconds,
      totalSeconds: item.totalSeconds,
      before: await toDataUrl(drawRegion(before, full, OVERVIEW_EDGE)),
      after: await toDataUrl(drawRegion(after, full, OVERVIEW_EDGE)),
      zoomBefore: await toDataUrl(drawRegion(before, zoomBox, ZOOM_EDGE)),
      zoomAfter: await toDataUrl(drawRegion(after, zoomBox, ZOOM_EDGE)),
      zoomBox,
      zoomSource,
    };
    return preview;
  } finally {
    before.close();
    after.close();
  }
}

/**
 * Adds a built preview to its tab's list in session storage.
 * @param {number} tabId
 * @param {Preview} preview
 */
export async function storePreview(tabId, preview) {
  const list = [preview, ...(await listPreviews(tabId))].slice(0, MAX_PER_TAB);
  try {
    await chrome.storage.session.set({ [keyFor(tabId)]: list });
  } catch {
    // Session storage is small (10 MB in Chrome): drop the other tabs' previews, keep this one.
    const everything = await chrome.storage.session.get(null);
    const others = Object.keys(everything).filter((key) => key.startsWith('previews:') && key !== keyFor(tabId));
    await chrome.storage.session.remove(others);
    await chrome.storage.session.set({ [keyFor(tabId)]: [preview] });
  }
}
