// Which files Veil cloaks: the photo formats the companion re-encodes in kind,
// videos, and animated images. Everything else (PDFs, SVG, text) passes
// through untouched. The same rule is in src/page/natives.js (the page-world
// side asks this one in the end).
'use strict';

(() => {
  // AVIF: the companion cloaks it where its Pillow has AVIF support, and refuses it (the
  // failure prompt, never the original) where not. Animated WebP is image/webp.
  const PHOTO_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/pjpeg', 'image/png', 'image/webp', 'image/heic', 'image/heif', 'image/avif']);
  // Animated images: every frame holds the faces a video would (docs/video.md).
  const ANIMATED_TYPES = new Set(['image/gif', 'image/apng']);
  // The containers phones and cameras write; the companion sniffs the bytes and refuses
  // what it cannot re-encode (unsupported_codec: the prompt, never the original).
  const VIDEO_TYPES = new Set(['video/mp4', 'video/quicktime', 'video/webm', 'video/x-matroska', 'video/3gpp']);
  // Some pickers hand over files with an empty type: fall back to the extension.
  const PHOTO_NAME = /\.(jpe?g|jfif|mpo|png|webp|heic|heif|avif|gif|apng)$/i;
  const VIDEO_NAME = /\.(mp4|m4v|mov|qt|3gp|webm|mkv)$/i;
  const ANIMATED_NAME = /\.(gif|apng)$/i;

  /** @param {File} file */
  const typeOf = (file) => (file.type || '').toLowerCase();

  /**
   * A video (by its type, or its name when it has none): cloaked through the streaming
   * path only, with progress (transport.js).
   * @param {File} file
   */
  function isVideo(file) {
    const type = typeOf(file);
    return type ? VIDEO_TYPES.has(type) : VIDEO_NAME.test(file.name);
  }

  /**
   * A GIF or APNG (by its type, or its name when it has none). An animated WebP has the
   * still's type: it is called a photo until the companion has looked inside.
   * @param {File} file
   */
  function isAnimated(file) {
    const type = typeOf(file);
    return type ? ANIMATED_TYPES.has(type) : ANIMATED_NAME.test(file.name);
  }

  /** @param {File} file */
  function isCloakable(file) {
    if (file.size === 0) return false;
    const type = typeOf(file);
    if (!type) return PHOTO_NAME.test(file.name) || VIDEO_NAME.test(file.name);
    return PHOTO_TYPES.has(type) || ANIMATED_TYPES.has(type) || VIDEO_TYPES.has(type);
  }

  /** @param {ArrayLike<File> | null | undefined} files */
  function hasCloakable(files) {
    return Array.from(files ?? []).some(isCloakable);
  }

  /**
   * What to call the files in Veil's texts: "photo", "video", "animated image" (a GIF
   * reads "your GIF" to nobody who picked an APNG) or "file" for a mix of kinds.
   * @param {File[]} files
   */
  function noun(files) {
    const kinds = new Set(files.map((file) => (isVideo(file) ? 'video' : isAnimated(file) ? 'animated image' : 'photo')));
    if (kinds.size > 1) return 'file';
    return kinds.values().next().value ?? 'photo';
  }

  veilContent.fileKinds = { isCloakable, hasCloakable, isVideo, noun };
})();
