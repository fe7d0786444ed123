// BlurHash decoder (https://github.com/woltapp/blurhash, MIT): draws the placeholder the media worker
// recorded into a small canvas, which CSS stretches under the image until it has loaded.
(function () {
  const CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~";
  const decode83 = (s) => [...s].reduce((v, c) => v * 83 + CHARS.indexOf(c), 0);
  const toLinear = (v) => { const x = v / 255; return x <= 0.04045 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); };
  const toSRGB = (v) => {
    const x = Math.max(0, Math.min(1, v));
    return x <= 0.0031308 ? Math.round(x * 12.92 * 255 + 0.5) : Math.round((1.055 * Math.pow(x, 1 / 2.4) - 0.055) * 255 + 0.5);
  };
  const signPow = (v, e) => Math.sign(v) * Math.pow(Math.abs(v), e);

  function decode(hash, w, h) {
    const size = decode83(hash[0]);
    const nx = (size % 9) + 1, ny = Math.floor(size / 9) + 1;
    if (hash.length !== 4 + 2 * nx * ny) throw new Error("bad blurhash length");
    const maxAC = (decode83(hash[1]) + 1) / 166;
    const dc = decode83(hash.substring(2, 6));
    const colors = [[toLinear(dc >> 16), toLinear((dc >> 8) & 255), toLinear(dc & 255)]];
    for (let i = 1; i < nx * ny; i++) {
      const v = decode83(hash.substring(4 + i * 2, 6 + i * 2));
      colors.push([Math.floor(v / 361), Math.floor(v / 19) % 19, v % 19].map((q) => signPow((q - 9) / 9, 2) * maxAC));
    }
    const px = new Uint8ClampedArray(w * h * 4);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let r = 0, g = 0, b = 0;
        for (let j = 0; j < ny; j++) {
          for (let i = 0; i < nx; i++) {
            const basis = Math.cos((Math.PI * x * i) / w) * Math.cos((Math.PI * y * j) / h);
            const c = colors[i + j * nx];
            r += c[0] * basis; g += c[1] * basis; b += c[2] * basis;
          }
        }
        const k = 4 * (x + y * w);
        px[k] = toSRGB(r); px[k + 1] = toSRGB(g); px[k + 2] = toSRGB(b); px[k + 3] = 255;
      }
    }
    return px;
  }

  window.paintBlurhashes = function (root) {
    for (const canvas of (root || document).querySelectorAll("canvas[data-blurhash]")) {
      try {
        const ctx = canvas.getContext("2d");
        const img = ctx.createImageData(canvas.width, canvas.height);
        img.data.set(decode(canvas.dataset.blurhash, canvas.width, canvas.height));
        ctx.putImageData(img, 0, 0);
        canvas.classList.add("painted");
      } catch (err) {
        canvas.remove();  // a malformed hash leaves the dominant colour behind: still a placeholder
      }
    }
  };
})();
