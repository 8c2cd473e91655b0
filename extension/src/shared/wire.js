// The wire format between content scripts and the background worker for file
// bytes. Chrome serialises extension messages as JSON, so ArrayBuffers do not
// survive: bytes travel as base64 strings, in chunks on a long-lived Port so
// a 25 MB photo never becomes one giant message (measured in
// build/bench_extension.py). This file is a classic script that sets
// `globalThis.veilWire`, so both the content scripts (classic scripts listed
// in the manifest) and the background module (side-effect import) load it.
'use strict';

(() => {
  const CHUNK_BYTES = 1 << 20;
  const PORT_NAME = 'veil-cloak';

  /** @type {(bytes: Uint8Array) => string} */
  const encode =
    typeof (/** @type {any} */ (Uint8Array.prototype).toBase64) === 'function'
      ? (bytes) => /** @type {any} */ (bytes).toBase64()
      : (bytes) => {
          let binary = '';
          for (let i = 0; i < bytes.length; i += 0x8000) {
            binary += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + 0x8000)));
          }
          return btoa(binary);
        };

  /** @type {(text: string) => Uint8Array} */
  const decode =
    typeof (/** @type {any} */ (Uint8Array).fromBase64) === 'function'
      ? (text) => /** @type {any} */ (Uint8Array).fromBase64(text)
      : (text) => {
          const binary = atob(text);
          const bytes = new Uint8Array(binary.length);
          for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
          return bytes;
        };

  /**
   * Sends a blob's bytes as base64 chunk messages on a port.
   * @param {chrome.runtime.Port} port
   * @param {Blob} blob
   */
  async function sendChunks(port, blob) {
    for (let offset = 0; offset < blob.size; offset += CHUNK_BYTES) {
      const bytes = new Uint8Array(await blob.slice(offset, offset + CHUNK_BYTES).arrayBuffer());
      port.postMessage({ kind: 'chunk', data: encode(bytes) });
    }
  }

  globalThis.veilWire = Object.freeze({ CHUNK_BYTES, PORT_NAME, encode, decode, sendChunks });
})();
