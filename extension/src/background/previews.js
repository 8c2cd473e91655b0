// Before/after previews for the popup: the last photos and videos cloaked in each tab
// (for a video, one frame from its middle, before and after).
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
 * @property {boolean} [video]  A video: before and after are the frame at `frameAt`.
 * @property {number} [frameAt]  Seconds into the video.
 * @property {string | null} [faceFrames]  "cloaked/total" face-frames (X-Veil-Face-Frames): videos and animated images.
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

// A video that does not show a frame within this is skipped (a codec the browser lacks
// can leave the element waiting rather than failing).
const VIDEO_FRAME_TIMEOUT_MS = 10_000;
// Where in the video the preview's frame is taken, as a share of its duration.
const VIDEO_FRAME_AT = 0.5;

/**
 * Resolves on `ok`, rejects on the element's `error` or after the time-out.
 * @param {HTMLVideoElement} video
 * @param {string} ok
 * @param {number} timeoutMs
 * @returns {Promise<void>}
 */
function videoEvent(video, ok, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(() => reject(new Error(`no ${ok} within ${timeoutMs} ms`))), timeoutMs);
    /** @param {() => void} action */
    const finish = (action) => {
      clearTimeout(timer);
      video.removeEventListener(ok, onOk);
      video.removeEventListener('error', onError);
      action();
    };
    const onOk = () => finish(resolve);
    const onError = () => finish(() => reject(new Error(video.error?.message || `media error ${video.error?.code}`)));
    video.addEventListener(ok, onOk);
    video.addEventListener('error', onError);
  });
}

/**
 * One frame of a video (a fixed share into it, so before and after show the same
 * frame): decoded by a <video> element of the page this runs in, drawn into a bitmap.
 * Needs a document: the transfer frame and Firefox's background page have one; Chrome's
 * service worker has not, and skips the preview.
 * @param {Blob} clip
 * @param {number | null} at  Seconds; null: VIDEO_FRAME_AT of the duration.
 * @returns {Promise<{bitmap: ImageBitmap, at: number}>}
 */
async function decodeVideoFrame(clip, at) {
  if (typeof document === 'undefined') throw new PreviewSkipped('no document here to decode a video frame in');
  const url = URL.createObjectURL(clip);
  const video = document.createElement('video');
  video.muted = true;
  video.preload = 'auto';
  try {
    const loaded = videoEvent(video, 'loadeddata', VIDEO_FRAME_TIMEOUT_MS);
    video.src = url;
    await loaded;
    const time = at ?? (Number.isFinite(video.duration) ? video.duration * VIDEO_FRAME_AT : 0);
    if (time > 0) {
      const seeked = videoEvent(video, 'seeked', VIDEO_FRAME_TIMEOUT_MS);
      video.currentTime = time;
      await seeked;
    }
    return { bitmap: await createImageBitmap(video), at: time };
  } catch (error) {
    throw new PreviewSkipped(`this browser cannot show a frame of ${clip.type || 'this video'}: ${String(error)}`);
  } finally {
    video.removeAttribute('src');
    video.load();
    URL.revokeObjectURL(url);
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
 *   profiles?: Array<import('./companion.js').FaceProfile | null>, video?: boolean, faceFrames?: string | null}} PreviewSource
 */

/**
 * Builds the preview of one cloaked photo (no storage: the transfer frame
 * builds it where it has the photos, the background may store it).
 * @param {PreviewSource} item
 * @returns {Promise<Preview>}
 */
export async function buildPreview(item) {
  /** @type {ImageBitmap} */
  let before;
  /** @type {ImageBitmap} */
  let after;
  /** @type {number | undefined} */
  let frameAt;
  if (item.video) {
    const first = await decodeVideoFrame(item.original, null);
    before = first.bitmap;
    frameAt = first.at;
    try {
      after = (await decodeVideoFrame(item.cloaked, first.at)).bitmap;
    } catch (error) {
      before.close();
      throw error;
    }
  } else {
    before = await decode(item.original);
    after = await decode(item.cloaked);
  }
  try {
    const full = /** @type {[number, number, number, number]} */ ([0, 0, before.width, before.height]);
    // An animation's boxes are each track's largest sighting, on whichever frame that was,
    // not on the first frame shown here (videos send none): zoom on what changed instead.
    const boxes = item.faceFrames ? [] : item.boxes;
    const largestBox = [...boxes].sort((p, q) => q[2] * q[3] - p[2] * p[3])[0];
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
    if (item.video) Object.assign(preview, { video: true, frameAt });
    // Videos and animated images (whose answer counts face-frames too: the popup names them).
    if (item.faceFrames) preview.faceFrames = item.faceFrames;
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
