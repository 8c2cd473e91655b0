// Which files Veil cloaks: the photo formats the companion re-encodes in kind.
// Everything else (PDFs, videos, GIFs, SVG, text) passes through untouched.
'use strict';

(() => {
  // AVIF: the companion cloaks it where its Pillow has AVIF support, and refuses it (the
  // failure prompt, never the original) where not.
  const CLOAKABLE_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/pjpeg', 'image/png', 'image/webp', 'image/heic', 'image/heif', 'image/avif']);
  // Some pickers hand over files with an empty type: fall back to the extension.
  const CLOAKABLE_NAME = /\.(jpe?g|jfif|mpo|png|webp|heic|heif|avif)$/i;

  /** @param {File} file */
  function isCloakable(file) {
    if (file.size === 0) return false;
    const type = (file.type || '').toLowerCase();
    return type ? CLOAKABLE_TYPES.has(type) : CLOAKABLE_NAME.test(file.name);
  }

  /** @param {ArrayLike<File> | null | undefined} files */
  function hasCloakable(files) {
    return Array.from(files ?? []).some(isCloakable);
  }

  veilContent.fileKinds = { isCloakable, hasCloakable };
})();
