// The wire format between content scripts and the background worker for file
// bytes. Chrome serialises extension messages as JSON, so ArrayBuffers do not
// survive: bytes travel as base64 strings, in chunks on a long-lived Port so
// a 25 MB photo never becomes one giant message (measured in
// build/bench/bench_extension.py). This file is a classic script that sets
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

  // Firefox structured-clones extension messages, so bytes can travel as they
  // are; Chrome JSON-serialises them. getBrowserInfo exists only in Firefox.
  const BINARY_MESSAGES = typeof (/** @type {any} */ (globalThis).browser?.runtime?.getBrowserInfo) === 'function';

  /**
   * Sends a blob's bytes as chunk messages on a port: raw bytes where the
   * browser clones messages, base64 otherwise.
   * @param {chrome.runtime.Port} port
   * @param {Blob} blob
   * @param {boolean} binary
   */
  async function sendChunks(port, blob, binary) {
    for (let offset = 0; offset < blob.size; offset += CHUNK_BYTES) {
      const bytes = new Uint8Array(await blob.slice(offset, offset + CHUNK_BYTES).arrayBuffer());
      port.postMessage(binary ? { kind: 'chunk', bytes } : { kind: 'chunk', data: encode(bytes) });
    }
  }

  /**
   * The bytes of a chunk message, whichever way they travelled.
   * @param {{data?: string, bytes?: Uint8Array}} message
   * @returns {Uint8Array}
   */
  function chunkBytes(message) {
    return message.bytes ? new Uint8Array(message.bytes) : decode(String(message.data));
  }

  globalThis.veilWire = Object.freeze({ CHUNK_BYTES, PORT_NAME, BINARY_MESSAGES, encode, decode, sendChunks, chunkBytes });
})();
