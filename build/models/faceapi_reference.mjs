// Reference embeddings from @vladmandic/face-api itself (tfjs CPU backend in Node).
// Usage: node faceapi_reference.mjs SOURCES_DIR CROPS.f32 OUT.json
// CROPS.f32: float32 [N,H,W,3] RGB 0..255 crops (square); FaceRecognitionNet resizes
// them to 150x150 itself, exactly as computeFaceDescriptor does for any input.
import fs from 'fs';
import path from 'path';
import util from 'util';

const [dir, cropsPath, outPath] = process.argv.slice(2);
// The ESM bundle's Node platform shim expects `util` from a require() it cannot make.
globalThis.__nodeUtil = util;
const faceapi = await import(path.resolve(dir, 'face-api.node-patched.mjs'));
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'face_recognition_model-weights_manifest.json')));
const bin = fs.readFileSync(path.join(dir, 'face_recognition_model.bin'));
const buffer = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
const net = faceapi.nets.faceRecognitionNet;
net.loadFromWeightMap(tf.io.decodeWeights(buffer, manifest[0].weights));
const raw = fs.readFileSync(cropsPath);
const pixels = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const side = Number(process.argv[5] || 112);
const per = side * side * 3;
const out = [];
for (let i = 0; i < pixels.length / per; i++) {
  const t = tf.tensor4d(pixels.slice(i * per, (i + 1) * per), [1, side, side, 3]);
  out.push(Array.from(await net.computeFaceDescriptor(t)));
  t.dispose();
}
fs.writeFileSync(outPath, JSON.stringify(out));
