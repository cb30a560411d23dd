// The VAE decoder's mean, p_θ(x|z), evaluated in the browser from the model's weights (Appendix C and the
// wider networks of vae_core.models): hidden layers h = act(W h + b), then Bernoulli: y = sigmoid(W h + b);
// Gaussian (Frey): μ = sigmoid of the first D outputs. vae_app.components.decoder_payload() gives each layer's
// weights as base64 float32, row-major (out, in).
function vaeFloat32(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

const vaeActivations = {
  tanh: Math.tanh,
  relu: (s) => (s > 0 ? s : 0),
  softplus: (s) => (s > 20 ? s : Math.log1p(Math.exp(s))),
};

function vaeMakeDecoder(payload) {
  const { D } = payload;
  const act = vaeActivations[payload.activation];
  const layers = payload.layers.map((l) => ({ W: vaeFloat32(l.w), b: vaeFloat32(l.b), n: l.in, m: l.out }));
  const buffers = layers.map((l) => new Float64Array(l.m));
  return function decode(z) {  // z: J numbers -> Float32Array of D pixels in (0, 1)
    let input = z;
    layers.forEach((l, k) => {
      const last = k === layers.length - 1, rows = last ? D : l.m, out = buffers[k];
      for (let i = 0; i < rows; i++) {
        let s = l.b[i];
        const row = i * l.n;
        for (let j = 0; j < l.n; j++) s += l.W[row + j] * input[j];
        out[i] = last ? 1 / (1 + Math.exp(-s)) : act(s);
      }
      input = out;
    });
    return Float32Array.from(input.subarray(0, D));
  };
}
