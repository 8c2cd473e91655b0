// Failures the extension detects itself, on top of the companion's own codes
// (error-codes.js). Each one maps to what the person should do about it.

/** @typedef {import('./error-codes.js').ErrorCode} CompanionErrorCode */

export const CLIENT_ERRORS = Object.freeze(/** @type {const} */ ({
  UNREACHABLE: 'companion_unreachable',
  NOT_PAIRED: 'not_paired',
  CLIENT_TIMEOUT: 'client_timeout',
  TRANSFER_FAILED: 'transfer_failed',
  BAD_RESPONSE: 'bad_response',
  // A runtime message from a sender that may not ask it (handlers.js).
  FORBIDDEN_SENDER: 'forbidden_sender',
}));

/** @typedef {typeof CLIENT_ERRORS[keyof typeof CLIENT_ERRORS]} ClientErrorCode */
/** @typedef {CompanionErrorCode | ClientErrorCode} AnyErrorCode */

/** A failure with a code the content script and the popup both understand. */
export class VeilFailure extends Error {
  /**
   * @param {AnyErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'VeilFailure';
    this.code = code;
  }
}

/**
 * The companion command for a port: the flag only when it is not the default.
 * @param {string} command  e.g. 'serve' or 'pair'
 * @param {number} port
 */
export function veilCommand(command, port) {
  return `.venv/bin/veil ${command}${port === 8345 ? '' : ` --port ${port}`}`;
}

/**
 * The one-line fix shown next to an error, or '' when there is nothing to run.
 * @param {string} code
 * @param {number} [port]
 * @returns {string}
 */
export function fixFor(code, port = 8345) {
  switch (code) {
    case CLIENT_ERRORS.UNREACHABLE:
      return `Start the companion: ${veilCommand('serve', port)}`;
    case CLIENT_ERRORS.NOT_PAIRED:
    case 'unauthorized':
      return `Pair: run ${veilCommand('pair', port)} and enter the code on Veil\u2019s pairing page (toolbar button, Pairing)`;
    case 'model_missing':
      return 'Reinstall the models: scripts/install, then .venv/bin/veil doctor';
    case 'token_store_unreadable':
      return 'Reset the stored tokens: .venv/bin/veil unpair, then pair again';
    default:
      return '';
  }
}
