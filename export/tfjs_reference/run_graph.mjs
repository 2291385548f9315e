// Runs an original TF.js graph model on given inputs with TF.js itself, so that
// export/tfjs_reference.py can compare the converted ONNX graph with it.
//
//   node run_graph.mjs <node_modules> <model.json> <io folder>
//
// The io folder holds request.json ({"backend", "inputs": [{"name", "dtype", "shape",
// "file"}], "outputs": [names]}) and each input as raw little-endian data. Each output is
// written as raw little-endian data next to it, described in response.json together with the
// versions and the backend that really ran.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const [modules, modelJson, folder] = process.argv.slice(2);
// Resolve the packages from the cache folder they were installed into, not from here.
const require = createRequire(join(modules, 'facet-entry.js'));
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const converter = require('@tensorflow/tfjs-converter');

const ARRAYS = { float32: Float32Array, int32: Int32Array };

function weightData(model, base) {
  const shards = model.weightsManifest.flatMap((group) =>
    group.paths.map((path) => readFileSync(join(base, path))));
  const all = Buffer.concat(shards);
  return all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
}

function tensorFrom(input) {
  const raw = readFileSync(join(folder, input.file));
  const Kind = ARRAYS[input.dtype];
  const values = new Kind(raw.buffer, raw.byteOffset, raw.byteLength / Kind.BYTES_PER_ELEMENT);
  return tf.tensor(values, input.shape, input.dtype);
}

const request = JSON.parse(readFileSync(join(folder, 'request.json'), 'utf8'));
// The wasm binaries ship inside the npm package; nothing is fetched.
wasm.setWasmPaths(join(modules, '@tensorflow', 'tfjs-backend-wasm', 'dist') + '/');
if (!(await tf.setBackend(request.backend))) throw new Error(`backend ${request.backend} failed`);
await tf.ready();

const model = JSON.parse(readFileSync(modelJson, 'utf8'));
const graph = await converter.loadGraphModel(tf.io.fromMemory({
  modelTopology: model.modelTopology,
  weightSpecs: model.weightsManifest.flatMap((group) => group.weights),
  weightData: weightData(model, dirname(modelJson)),
  format: model.format,
  signature: model.signature,
}));
const feeds = Object.fromEntries(request.inputs.map((input) => [input.name, tensorFrom(input)]));
const started = performance.now();
const results = graph.execute(feeds, request.outputs);
const outputs = [];
for (const [index, tensor] of (Array.isArray(results) ? results : [results]).entries()) {
  const file = `output_${index}.bin`;
  const values = tensor.dataSync();
  writeFileSync(join(folder, file), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  outputs.push({ name: request.outputs[index], dtype: tensor.dtype, shape: tensor.shape, file });
}
writeFileSync(join(folder, 'response.json'), JSON.stringify({
  outputs,
  backend: tf.getBackend(),
  tfjs: tf.version_core,
  node: process.version,
  milliseconds: performance.now() - started,
}));
