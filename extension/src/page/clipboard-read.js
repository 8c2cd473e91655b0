// navigator.clipboard.read() (Async Clipboard API), in the page's own world
// (see natives.js). A page that reads the clipboard itself (a "Paste image"
// button, rather than a paste event, which src/page/paste.js covers) gets the
// cloaks: the images of the items it reads go to Veil as one batch, like a
// paste, with the same indicator and failure prompt; the items' text parts are
// handed over as they are. If Veil cannot protect the images, read() rejects
// with NotAllowedError, as when the person refuses clipboard access: the page
// gets nothing. readText() reads no images and is left alone.
'use strict';

(() => {
  const page = veilPage;
  const { natives } = page;
  const Clip = typeof Clipboard === 'function' ? Clipboard : null;
  const Item = typeof ClipboardItem === 'function' ? ClipboardItem : null;
  const read = Clip?.prototype.read;
  if (!Clip || !Item || typeof read !== 'function') return;
  const NewItem = Item;

  const itemTypes = page.getter(Item.prototype, 'types');
  const getType = page.uncurry(Item.prototype.getType);
  const EXTENSIONS = /** @type {Record<string, string>} */ ({ 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp' });

  /**
   * @param {ClipboardItem[]} items  What the browser read.
   * @returns {Promise<ClipboardItem[]>}  The same items, their images cloaked.
   */
  async function protectItems(items) {
    /** @type {Array<Array<[string, Blob]>>} */
    const parts = [];
    /** @type {File[]} */
    const images = [];
    /** @type {Array<[number, number]>} */
    const where = []; // item and part of each image
    for (let index = 0; index < items.length; index += 1) {
      const types = itemTypes(items[index]);
      /** @type {Array<[string, Blob]>} */
      const item = [];
      for (let typeIndex = 0; typeIndex < types.length; typeIndex += 1) {
        const type = types[typeIndex];
        const blob = /** @type {Blob} */ (await getType(items[index], type));
        const extension = EXTENSIONS[type];
        if (extension) {
          const image = new natives.File([blob], `clipboard-image-${images.length + 1}.${extension}`, { type });
          if (page.isCloakable(image)) {
            natives.push(images, image);
            natives.push(where, [index, item.length]);
          }
        }
        natives.push(item, [type, blob]);
      }
      natives.push(parts, item);
    }
    if (images.length === 0) return items;
    const cloaks = await page.protect(images, 'clipboard');
    if (cloaks === null) {
      throw new natives.DOMException('Veil did not hand over the clipboard image: it could not be protected.', 'NotAllowedError');
    }
    for (let index = 0; index < where.length; index += 1) {
      const [itemIndex, partIndex] = where[index];
      parts[itemIndex][partIndex][1] = cloaks[index];
    }
    /** @type {ClipboardItem[]} */
    const answer = [];
    for (let index = 0; index < parts.length; index += 1) {
      /** @type {Record<string, Blob>} */
      const record = {};
      for (let partIndex = 0; partIndex < parts[index].length; partIndex += 1) {
        const [type, blob] = parts[index][partIndex];
        natives.defineProperty(record, type, { value: blob, enumerable: true });
      }
      natives.push(answer, new NewItem(record));
    }
    return answer;
  }

  const wrappers = {
    /**
     * @this {Clipboard}
     * @param {unknown[]} args
     */
    async read(...args) {
      const items = /** @type {ClipboardItem[]} */ (await natives.apply(read, this, args));
      return protectItems(items);
    },
  };
  page.replace(Clip.prototype, 'read', { value: wrappers.read });
})();
