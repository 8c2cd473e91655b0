// First of Veil's page-world scripts (manifest "world": "MAIN", document_start,
// before any page script): takes the browser's own functions that the other
// page-world scripts use (page scripts that run later may replace the
// globals), sets up the private channel to Veil's isolated content script
// (src/content/page-channel.js), and makes Veil's wrappers print like the
// browser's own functions. It shares these with the next page-world scripts
// through `veilPage`, which src/page/seal.js deletes before any page script
// runs.
//
// This world has no extension API and nothing here is secret from the page;
// see docs/threat-model.md for what a page that sets out to evade Veil can do.
'use strict';

(() => {
  const { apply } = Reflect;
  const bindCall = Function.prototype.call.bind(Function.prototype.bind);
  /**
   * `this`-taking native as a plain function, immune to later changes of the prototype.
   * @template {Function} F
   * @param {F} fn
   * @returns {(self: any, ...args: any[]) => any}
   */
  const uncurry = (fn) => bindCall(Function.prototype.call, fn);
  /**
   * @param {object} owner
   * @param {string} name
   * @returns {(self: any) => any}
   */
  const getter = (owner, name) => {
    const get = Object.getOwnPropertyDescriptor(owner, name)?.get;
    return get ? uncurry(get) : () => undefined;
  };

  const natives = {
    apply,
    construct: Reflect.construct,
    defineProperty: Object.defineProperty,
    getOwnPropertyDescriptor: Object.getOwnPropertyDescriptor,
    getPrototypeOf: Object.getPrototypeOf,
    create: Object.create,
    freeze: Object.freeze,
    isArray: Array.isArray,
    arrayFrom: Array.from,
    push: uncurry(Array.prototype.push),
    weakMapGet: uncurry(WeakMap.prototype.get),
    weakMapSet: uncurry(WeakMap.prototype.set),
    weakMapHas: uncurry(WeakMap.prototype.has),
    weakMapDelete: uncurry(WeakMap.prototype.delete),
    weakSetAdd: uncurry(WeakSet.prototype.add),
    weakSetHas: uncurry(WeakSet.prototype.has),
    mapGet: uncurry(Map.prototype.get),
    mapSet: uncurry(Map.prototype.set),
    mapDelete: uncurry(Map.prototype.delete),
    promiseThen: uncurry(Promise.prototype.then),
    setTimeout: window.setTimeout.bind(window),
    addEventListener: uncurry(EventTarget.prototype.addEventListener),
    removeEventListener: uncurry(EventTarget.prototype.removeEventListener),
    dispatchEvent: uncurry(EventTarget.prototype.dispatchEvent),
    stopImmediatePropagation: uncurry(Event.prototype.stopImmediatePropagation),
    preventDefault: uncurry(Event.prototype.preventDefault),
    composedPath: uncurry(Event.prototype.composedPath),
    // isTrusted is an unforgeable own property of each event: the page cannot redefine it.
    eventIsTrusted: (/** @type {Event} */ event) => event.isTrusted === true,
    eventType: getter(Event.prototype, 'type'),
    defaultPrevented: getter(Event.prototype, 'defaultPrevented'),
    getRootNode: uncurry(Node.prototype.getRootNode),
    isConnected: getter(Node.prototype, 'isConnected'),
    localName: getter(Element.prototype, 'localName'),
    inputType: getter(HTMLInputElement.prototype, 'type'),
    inputFiles: getter(HTMLInputElement.prototype, 'files'),
    setInputFiles: uncurry(
      /** @type {Function} */ (Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'files')?.set),
    ),
    fileListLength: getter(FileList.prototype, 'length'),
    fileListItem: uncurry(FileList.prototype.item),
    fileName: getter(File.prototype, 'name'),
    blobSize: getter(Blob.prototype, 'size'),
    blobType: getter(Blob.prototype, 'type'),
    postMessage: uncurry(MessagePort.prototype.postMessage),
    File,
    DataTransfer,
    dataTransferItems: uncurry(/** @type {Function} */ (Object.getOwnPropertyDescriptor(DataTransfer.prototype, 'items')?.get)),
    dataTransferFiles: getter(DataTransfer.prototype, 'files'),
    dataTransferTypes: getter(DataTransfer.prototype, 'types'),
    getData: uncurry(DataTransfer.prototype.getData),
    setData: uncurry(DataTransfer.prototype.setData),
    itemListAdd: uncurry(DataTransferItemList.prototype.add),
    itemListLength: getter(DataTransferItemList.prototype, 'length'),
    itemKind: getter(DataTransferItem.prototype, 'kind'),
    itemGetAsFile: uncurry(DataTransferItem.prototype.getAsFile),
    DragEvent,
    ClipboardEvent,
    clipboardData: getter(ClipboardEvent.prototype, 'clipboardData'),
    Event,
    MessageEvent,
    MessageChannel,
    DOMException,
    ShadowRoot,
  };

  // Wrappers print as the browser's own functions do ("function click() { [native code] }").
  const toString = Function.prototype.toString;
  const nativeToString = uncurry(toString);
  /** @type {WeakMap<Function, Function>} */
  const masks = new WeakMap();
  const wrappers = {
    /** @this {Function} */
    toString() {
      return nativeToString(natives.weakMapGet(masks, this) ?? this);
    },
  };
  natives.weakMapSet(masks, wrappers.toString, toString);
  natives.defineProperty(Function.prototype, 'toString', {
    ...natives.getOwnPropertyDescriptor(Function.prototype, 'toString'),
    value: wrappers.toString,
  });

  /**
   * Replaces a method or accessor on `owner`, keeping its flags; the
   * replacement prints as the original.
   * @param {object} owner
   * @param {string} name
   * @param {{value?: Function, get?: Function, set?: Function}} replacement
   */
  function replace(owner, name, replacement) {
    const descriptor = natives.getOwnPropertyDescriptor(owner, name);
    if (!descriptor) return;
    for (const key of /** @type {const} */ (['value', 'get', 'set'])) {
      const original = descriptor[key];
      const wrapper = replacement[key];
      if (typeof wrapper === 'function' && typeof original === 'function') {
        natives.weakMapSet(masks, wrapper, original);
        descriptor[key] = wrapper;
      }
    }
    natives.defineProperty(owner, name, descriptor);
  }

  // The channel to the isolated content script, offered at once. Both sides
  // normally run before any page script, in either order; Firefox may run the
  // isolated one later, so each side keeps listening until they are connected
  // (see src/content/page-channel.js and docs/threat-model.md for what a page
  // that answers first could do: only keep Veil from working, i.e. get nothing).
  const OFFER = 'veil-page-channel-offer';
  const ASK = 'veil-page-channel-ask';
  const channel = new MessageChannel();
  const port = channel.port1;
  let connected = false;
  /** @type {Array<() => void>} */
  let onConnected = [];
  function offer() {
    if (connected) return true;
    connected = !natives.dispatchEvent(window, new MessageEvent(OFFER, { ports: [channel.port2], cancelable: true }));
    if (connected) {
      natives.removeEventListener(window, ASK, offer, true);
      const waiting = onConnected;
      onConnected = [];
      for (let index = 0; index < waiting.length; index += 1) waiting[index]();
    }
    return connected;
  }
  const connectWait = 3000;
  if (!offer()) natives.addEventListener(window, ASK, offer, true);

  /** @type {Map<number, (files: Array<File | null> | null) => void>} */
  const answers = new Map();
  let nextId = 1;
  port.onmessage = (event) => {
    const data = event.data;
    const answer = natives.mapGet(answers, data?.id);
    if (data?.kind !== 'files' || !answer) return;
    natives.mapDelete(answers, data.id);
    answer(natives.isArray(data.files) ? data.files : null);
  };

  /**
   * Hands files to Veil; `done` resolves to the files for the page (the cloaks,
   * the originals where nothing is to be done or the person chose them), or
   * null: give the page nothing. `cancel()` says the page will not take this
   * answer (a later pick in the same input won): Veil stops the work on the
   * companion and `done` resolves to null at once.
   * @param {File[]} files
   * @param {string} path  Which interception path asks (for the isolated side's records).
   * @returns {{done: Promise<File[] | null>, cancel: () => void}}
   */
  function request(files, path) {
    let cancelled = false;
    /** @type {number | null} */
    let sentId = null;
    /** @type {(result: File[] | null) => void} */
    let settle = () => {};
    /** @type {Promise<File[] | null>} */
    const done = new Promise((resolve) => {
      settle = resolve;
      /** @param {boolean} waited */
      const send = (waited) => {
        if (cancelled) return;
        if (!connected) {
          if (waited) return resolve(null);
          // Veil's content script is not there (yet): wait a little, then hand out
          // nothing rather than the originals.
          const timer = natives.setTimeout(() => {
            console.warn('Veil: no channel to the extension; the page gets nothing.');
            resolve(null);
          }, connectWait);
          natives.push(onConnected, () => {
            clearTimeout(timer);
            send(true);
          });
          return;
        }
        const id = nextId++;
        sentId = id;
        natives.mapSet(answers, id, (/** @type {Array<File | null> | null} */ result) => {
          if (!result || result.length !== files.length) return resolve(null);
          /** @type {File[]} */
          const checked = [];
          for (let index = 0; index < result.length; index += 1) {
            if (!(result[index] instanceof natives.File)) return resolve(null);
            natives.push(checked, result[index]);
          }
          resolve(checked);
        });
        natives.postMessage(port, { kind: 'files', id, path, files });
      };
      send(false);
    });
    const cancel = () => {
      if (cancelled) return;
      cancelled = true;
      if (sentId !== null) {
        natives.mapDelete(answers, sentId);
        natives.postMessage(port, { kind: 'cancel', id: sentId });
      }
      settle(null);
    };
    return { done, cancel };
  }

  /**
   * @param {File[]} files
   * @param {string} path
   * @returns {Promise<File[] | null>}
   */
  const protect = (files, path) => request(files, path).done;

  /** @param {{kind: string, code?: string}} message */
  function tell(message) {
    if (connected) natives.postMessage(port, message);
  }

  // Photos, animated images and videos: the same lists as src/content/file-kinds.js.
  const CLOAKABLE_TYPES = [
    'image/jpeg',
    'image/jpg',
    'image/pjpeg',
    'image/png',
    'image/webp',
    'image/heic',
    'image/heif',
    'image/avif',
    'image/gif',
    'image/apng',
    'video/mp4',
    'video/quicktime',
    'video/webm',
    'video/x-matroska',
    'video/3gpp',
  ];
  const CLOAKABLE_NAME = /\.(jpe?g|jfif|mpo|png|webp|heic|heif|avif|gif|apng|mp4|m4v|mov|qt|3gp|webm|mkv)$/i;
  const regexTest = uncurry(RegExp.prototype.test);
  const toLower = uncurry(String.prototype.toLowerCase);
  const includes = uncurry(Array.prototype.includes);

  /**
   * The same rule as src/content/file-kinds.js (which decides in the end).
   * @param {File} file
   */
  function isCloakable(file) {
    if (natives.blobSize(file) === 0) return false;
    const type = toLower(natives.blobType(file) || '');
    return type ? includes(CLOAKABLE_TYPES, type) : regexTest(CLOAKABLE_NAME, natives.fileName(file));
  }

  /**
   * The files of a FileList as an array, read with the browser's own functions.
   * @param {FileList | null} list
   * @returns {File[]}
   */
  function filesOf(list) {
    /** @type {File[]} */
    const files = [];
    if (!list) return files;
    const length = natives.fileListLength(list);
    for (let index = 0; index < length; index += 1) natives.push(files, natives.fileListItem(list, index));
    return files;
  }

  /** @param {File[]} files */
  function anyCloakable(files) {
    // Indexed loops, not for..of: a page may have replaced Array.prototype[Symbol.iterator].
    for (let index = 0; index < files.length; index += 1) if (isCloakable(files[index])) return true;
    return false;
  }

  /**
   * A DataTransfer holding these files (for input.files and re-dispatched drops and pastes).
   * @param {File[]} files
   */
  function toDataTransfer(files) {
    const transfer = new natives.DataTransfer();
    const items = natives.dataTransferItems(transfer);
    for (let index = 0; index < files.length; index += 1) natives.itemListAdd(items, files[index]);
    return transfer;
  }

  /** @type {VeilPage} */
  const shared = {
    natives,
    uncurry,
    getter,
    replace,
    protect,
    request,
    tell,
    isCloakable,
    anyCloakable,
    filesOf,
    toDataTransfer,
  };
  natives.defineProperty(globalThis, 'veilPage', { value: shared, configurable: true, enumerable: false, writable: false });
})();
