// Typed wrapper around runtime.sendMessage for extension pages (popup,
// options, pairing): the background answers through handlers.js.

/** @typedef {import('../background/handlers.js').Messages} Messages */

/**
 * @template {keyof Messages} K
 * @param {K} type
 * @param {Messages[K]['payload']} payload
 * @returns {Promise<Messages[K]['answer']>}
 */
export async function ask(type, payload) {
  const answer = await chrome.runtime.sendMessage({ type, payload });
  if (answer && typeof answer === 'object' && 'error' in answer) {
    const { code, message, fix } = answer.error;
    throw Object.assign(new Error(message), { code, fix });
  }
  return answer;
}
