// Drag and drop, in the page's own world (see natives.js). A trusted drop
// that carries photos (or folders, which may hold photos) is stopped in the
// capture phase on window before any page listener sees it, also when it
// lands on a file input. Veil reads every file now (folders included, through
// their entries), has the photos cloaked, and dispatches a drop carrying the
// cloaks at the same target with the same coordinates and keys. A script-made
// DataTransfer has no entries or handles of its own, so for the files of
// Veil's drop, DataTransferItem's webkitGetAsEntry() and
// getAsFileSystemHandle() give entries and handles that read the cloaks
// (folders as directory entries and handles, with the same tree). A drop on a
// file input that no page listener cancels fills the input with the cloaks,
// as the browser would have with the originals.
'use strict';

(() => {
  const page = veilPage;
  const { natives } = page;
  const dragTransfer = page.getter(DragEvent.prototype, 'dataTransfer');
  // Chromium has no FileSystemEntry globals: the prototypes and their
  // functions are learnt from the first entries of a trusted drop.
  /** @type {{file: any, directory: any, reader: any, base: any}} */
  const protos = { file: null, directory: null, reader: null, base: null };
  /** @param {any} entry */
  function learn(entry) {
    const proto = natives.getPrototypeOf(entry);
    protos.base ??= natives.getPrototypeOf(proto);
    if (entryIsDirectory(entry)) protos.directory ??= proto;
    else protos.file ??= proto;
    return entry;
  }
  /** @param {any} entry */
  const entryIsDirectory = (entry) => page.getter(protos.base ?? natives.getPrototypeOf(natives.getPrototypeOf(entry)), 'isDirectory')(entry);
  /** @param {any} entry */
  const entryName = (entry) => page.getter(protos.base, 'name')(entry);
  /** @param {any} entry */
  const createReader = (entry) => {
    const reader = natives.apply(protos.directory.createReader, entry, []);
    protos.reader ??= natives.getPrototypeOf(reader);
    return reader;
  };
  /** @param {any} reader @param {Function} success @param {Function} failure */
  const readEntries = (reader, success, failure) => natives.apply(protos.reader.readEntries, reader, [success, failure]);
  /** @param {any} entry @param {Function} success @param {Function} failure */
  const entryFile = (entry, success, failure) => natives.apply(protos.file.file, entry, [success, failure]);
  const getAsEntry = DataTransferItem.prototype.webkitGetAsEntry;
  const getAsHandle = /** @type {any} */ (DataTransferItem.prototype).getAsFileSystemHandle;
  const HandleFile = typeof FileSystemFileHandle === 'function' ? FileSystemFileHandle : null;
  const HandleDirectory = typeof FileSystemDirectoryHandle === 'function' ? FileSystemDirectoryHandle : null;
  const NativePromise = Promise;

  /**
   * One dropped thing: a file, or a folder with what it holds.
   * @typedef {{name: string, file: File | null, children: Node[] | null, path: string}} Node
   */

  /** The File Veil put into its drop -> what the page gets for it. */
  const entries = new WeakMap();
  const handles = new WeakMap();

  /**
   * Defines own, read-only properties (they hide the prototype's getters).
   * @param {object} target
   * @param {Record<string, unknown>} values
   * @returns {any}
   */
  function define(target, values) {
    for (const key of Object.keys(values)) {
      natives.defineProperty(target, key, { value: values[key], enumerable: true, configurable: true, writable: false });
    }
    return target;
  }

  /**
   * @template T
   * @param {(resolve: (value: T) => void, reject: (error: unknown) => void) => void} executor
   * @returns {Promise<T>}
   */
  const promise = (executor) => new NativePromise(executor);

  /**
   * Reads a folder entry of the trusted drop, all the way down.
   * @param {FileSystemEntry} entry
   * @param {string} path
   * @returns {Promise<Node>}
   */
  async function walk(entry, path) {
    learn(entry);
    const name = entryName(entry);
    const here = `${path}/${name}`;
    if (!entryIsDirectory(entry)) {
      const file = await promise((resolve, reject) => entryFile(entry, resolve, reject));
      return { name, file: /** @type {File} */ (file), children: null, path: here };
    }
    const reader = createReader(entry);
    /** @type {Node[]} */
    const children = [];
    for (;;) {
      const batch = /** @type {FileSystemEntry[]} */ (await promise((resolve, reject) => readEntries(reader, resolve, reject)));
      if (batch.length === 0) break;
      for (let index = 0; index < batch.length; index += 1) natives.push(children, await walk(batch[index], here));
    }
    return { name, file: null, children, path: here };
  }

  /**
   * @param {Node} node
   * @param {File[]} into
   */
  function flatten(node, into) {
    if (node.file) natives.push(into, node.file);
    for (const child of node.children ?? []) flatten(child, into);
    return into;
  }

  /**
   * Swaps each file of the tree for Veil's answer, in the order flatten() listed them.
   * @param {Node} node
   * @param {File[]} answers
   * @param {{next: number}} cursor
   */
  function swap(node, answers, cursor) {
    if (node.file) node.file = answers[cursor.next++];
    for (const child of node.children ?? []) swap(child, answers, cursor);
  }

  /**
   * An entry the page can read like the browser's own (MDN's drop example, folder readers).
   * @param {Node} node
   * @param {FileSystemEntry | null} parent
   * @returns {FileSystemEntry}
   */
  function entryFor(node, parent) {
    const later = (/** @type {Function | undefined} */ callback, /** @type {unknown} */ value) =>
      natives.setTimeout(() => callback?.(value), 0);
    const common = { name: node.name, fullPath: node.path, filesystem: null };
    if (node.file) {
      const file = node.file;
      return define(natives.create(protos.file ?? Object.prototype), {
        ...common,
        isFile: true,
        isDirectory: false,
        file: (/** @type {Function} */ success) => later(success, file),
        getParent: (/** @type {Function} */ success) => later(success, parent),
      });
    }
    /** @type {FileSystemEntry} */
    const directory = natives.create(protos.directory ?? Object.prototype);
    const children = (node.children ?? []).map((child) => entryFor(child, directory));
    /** @param {string} name */
    const find = (name) => children.find((child) => child.name === String(name).replace(/^\.?\//, ''));
    return define(directory, {
      ...common,
      isFile: false,
      isDirectory: true,
      createReader: () => {
        let done = false;
        return define(natives.create(protos.reader ?? Object.prototype), {
          readEntries: (/** @type {Function} */ success) => {
            later(success, done ? [] : [...children]);
            done = true;
          },
        });
      },
      getFile: (/** @type {string} */ name, /** @type {unknown} */ _options, /** @type {Function} */ success, /** @type {Function} */ failure) => {
        const found = find(name);
        if (found?.isFile) later(success, found);
        else later(failure, new natives.DOMException('A requested file or directory could not be found.', 'NotFoundError'));
      },
      getDirectory: (/** @type {string} */ name, /** @type {unknown} */ _options, /** @type {Function} */ success, /** @type {Function} */ failure) => {
        const found = find(name);
        if (found?.isDirectory) later(success, found);
        else later(failure, new natives.DOMException('A requested file or directory could not be found.', 'NotFoundError'));
      },
      getParent: (/** @type {Function} */ success) => later(success, parent ?? directory),
    });
  }

  /**
   * A FileSystemHandle the page can read like the browser's own (web.dev's drop example).
   * @param {Node} node
   * @returns {object}
   */
  function handleFor(node) {
    const notAllowed = () => NativePromise.reject(new natives.DOMException('Veil hands out cloaked copies: they cannot be written.', 'NotAllowedError'));
    /** @type {object} */
    let handle;
    const common = {
      name: node.name,
      isSameEntry: async (/** @type {unknown} */ other) => other === handle,
      queryPermission: async () => 'granted',
      requestPermission: async () => 'granted',
    };
    if (node.file) {
      const file = node.file;
      handle = define(natives.create(/** @type {Function} */ (HandleFile).prototype), {
        ...common,
        kind: 'file',
        getFile: async () => file,
        createWritable: notAllowed,
        move: notAllowed,
        remove: notAllowed,
      });
      return handle;
    }
    const children = (node.children ?? []).map((child) => /** @type {[string, object]} */ ([child.name, handleFor(child)]));
    /** @param {string} kind @param {string} name */
    const find = async (kind, name) => {
      const found = children.find(([childName, child]) => childName === name && /** @type {any} */ (child).kind === kind);
      if (!found) throw new natives.DOMException('A requested file or directory could not be found.', 'NotFoundError');
      return found[1];
    };
    async function* pairs() {
      for (const pair of children) yield pair;
    }
    handle = define(natives.create(/** @type {Function} */ (HandleDirectory).prototype), {
      ...common,
      kind: 'directory',
      entries: pairs,
      keys: async function* keys() {
        for (const [name] of children) yield name;
      },
      values: async function* values() {
        for (const [, child] of children) yield child;
      },
      [Symbol.asyncIterator]: pairs,
      getFileHandle: (/** @type {string} */ name) => find('file', String(name)),
      getDirectoryHandle: (/** @type {string} */ name) => find('directory', String(name)),
      removeEntry: notAllowed,
      resolve: async () => null,
    });
    return handle;
  }

  /**
   * @param {Node[]} tops  What was dropped, in order.
   * @param {Array<[string, string]>} strings  The drop's other data (text, URLs).
   * @param {EventTarget} target
   * @param {DragEventInit} init
   */
  async function redrop(tops, strings, target, init) {
    /** @type {Node[]} */
    const tree = [];
    for (const top of tops) {
      if (top.children === null) natives.push(tree, top);
      else {
        try {
          natives.push(tree, await walk(/** @type {any} */ (top).entry, ''));
        } catch {
          page.tell({ kind: 'notice', code: 'folder_unreadable' });
          return;
        }
      }
    }
    /** @type {File[]} */
    const files = [];
    for (const node of tree) flatten(node, files);
    const answers = files.length > 0 ? await page.protect(files, 'drop') : [];
    if (answers === null) return; // cancelled: the page gets nothing
    const cursor = { next: 0 };
    for (const node of tree) swap(node, answers, cursor);
    /** @type {File[]} */
    const carried = [];
    /** @type {File[]} */
    const plain = [];
    for (const node of tree) {
      if (node.file) natives.push(plain, node.file);
      // A folder travels as the browser carries one: an empty File with its name.
      const file = node.file ?? new natives.File([], node.name);
      natives.weakMapSet(entries, file, entryFor(node, null));
      if (HandleFile && HandleDirectory) natives.weakMapSet(handles, file, handleFor(node));
      natives.push(carried, file);
    }
    const transfer = page.toDataTransfer(carried);
    for (const [type, value] of strings) natives.setData(transfer, type, value);
    const drop = new natives.DragEvent('drop', { ...init, dataTransfer: transfer });
    const proceed = natives.dispatchEvent(target, drop);
    // The browser fills a file input with what was dropped on it (never with a folder).
    if (proceed && page.fileInput?.isFileInput(target)) {
      page.fileInput?.deliver(/** @type {HTMLInputElement} */ (target), plain);
    }
  }

  natives.addEventListener(
    window,
    'dragenter',
    (/** @type {DragEvent} */ event) => {
      const transfer = natives.eventIsTrusted(event) ? dragTransfer(event) : null;
      if (transfer && natives.dataTransferTypes(transfer).includes('Files')) page.tell({ kind: 'warm' });
    },
    true,
  );

  natives.addEventListener(
    window,
    'drop',
    (/** @type {DragEvent} */ event) => {
      if (!natives.eventIsTrusted(event)) return;
      const transfer = dragTransfer(event);
      if (!transfer) return;
      const items = natives.dataTransferItems(transfer);
      const count = natives.itemListLength(items);
      /** @type {Array<Node & {entry?: FileSystemEntry}>} */
      const tops = [];
      let folders = false;
      // Everything is read now: the DataTransfer is unreadable once this event returns.
      for (let index = 0; index < count; index += 1) {
        const item = items[index];
        if (natives.itemKind(item) !== 'file') continue;
        const entry = typeof getAsEntry === 'function' ? natives.apply(getAsEntry, item, []) : null;
        if (entry) learn(entry);
        if (entry && entryIsDirectory(entry)) {
          folders = true;
          natives.push(tops, { name: entryName(entry), file: null, children: [], path: `/${entryName(entry)}`, entry });
        } else {
          const file = natives.itemGetAsFile(item);
          if (file) natives.push(tops, { name: natives.fileName(file), file, children: null, path: `/${natives.fileName(file)}` });
        }
      }
      const files = page.filesOf(natives.dataTransferFiles(transfer));
      if (!folders && !page.anyCloakable(files)) return; // nothing to protect: the drop goes on untouched
      natives.preventDefault(event); // the browser must not open or insert the original either
      natives.stopImmediatePropagation(event);
      /** @type {Array<[string, string]>} */
      const strings = [];
      const types = natives.dataTransferTypes(transfer);
      for (let index = 0; index < types.length; index += 1) {
        if (types[index] !== 'Files') natives.push(strings, [types[index], natives.getData(transfer, types[index])]);
      }
      const target = natives.composedPath(event)[0] ?? document;
      /** @type {DragEventInit} */
      const init = {
        bubbles: true,
        cancelable: true,
        composed: true,
        clientX: event.clientX,
        clientY: event.clientY,
        screenX: event.screenX,
        screenY: event.screenY,
        ctrlKey: event.ctrlKey,
        shiftKey: event.shiftKey,
        altKey: event.altKey,
        metaKey: event.metaKey,
      };
      void redrop(tops, strings, target, init);
    },
    true,
  );

  const wrappers = {
    /** @this {DataTransferItem} */
    webkitGetAsEntry() {
      const file = natives.itemKind(this) === 'file' ? natives.itemGetAsFile(this) : null;
      const fake = file ? natives.weakMapGet(entries, file) : undefined;
      return fake ?? natives.apply(getAsEntry, this, []);
    },
    /** @this {DataTransferItem} */
    getAsFileSystemHandle() {
      const file = natives.itemKind(this) === 'file' ? natives.itemGetAsFile(this) : null;
      const fake = file ? natives.weakMapGet(handles, file) : undefined;
      return fake ? NativePromise.resolve(fake) : natives.apply(getAsHandle, this, []);
    },
  };
  if (typeof getAsEntry === 'function') page.replace(DataTransferItem.prototype, 'webkitGetAsEntry', { value: wrappers.webkitGetAsEntry });
  if (typeof getAsHandle === 'function') {
    page.replace(DataTransferItem.prototype, 'getAsFileSystemHandle', { value: wrappers.getAsFileSystemHandle });
  }
})();
