"""`SketchCanvas`: a small drawing surface (an anywidget) whose strokes are a trait.

The browser only collects strokes: each pointer stroke (mouse, pen or finger) is appended to
`strokes` when the pointer lifts, as {"points": [[x, y], ...], "size", "color", "erase"} in the
drawing's own pixels (`width` x `height`, however large it is shown). Python computes every
pixel a model sees from that list (`kit.features.sketch`), so tests set `strokes` and get the same image.
Setting `strokes` from Python (undo, clear, a test) redraws the view.

mode "draw": strokes in their colours on white paper, or over `background` (PNG bytes).
mode "mask": every stroke in translucent magenta over `background`, the picture being restored.
"""

from __future__ import annotations

import anywidget
import traitlets as T

from ..features import sketch

_ESM = r"""
function bytesOf(value) {
  if (!value) return null;
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return null;
}

function render({ model, el }) {
  const frame = document.createElement("div");
  frame.className = "kit-canvas-frame";
  const photo = document.createElement("img");
  photo.className = "kit-canvas-background";
  photo.alt = "";
  const canvas = document.createElement("canvas");
  canvas.className = "kit-canvas-strokes";
  frame.append(photo, canvas);
  el.append(frame);
  const ctx = canvas.getContext("2d");
  let url = null;
  let current = null;  // the stroke being drawn, not yet sent

  function layout() {
    const w = model.get("width"), h = model.get("height"), shown = model.get("display_width");
    canvas.width = w;
    canvas.height = h;
    frame.style.width = shown + "px";
    frame.style.height = Math.round(shown * h / w) + "px";
    frame.classList.toggle("kit-mask-mode", model.get("mode") === "mask");
    frame.classList.toggle("kit-pixelated", shown >= 2 * w);
    redraw();
  }

  function background() {
    if (url) URL.revokeObjectURL(url);
    url = null;
    const data = bytesOf(model.get("background"));
    if (data && data.length) {
      url = URL.createObjectURL(new Blob([data], { type: "image/png" }));
      photo.src = url;
      photo.style.display = "";
    } else {
      photo.removeAttribute("src");
      photo.style.display = "none";
    }
  }

  function paint(stroke) {
    const points = stroke.points;
    ctx.save();
    ctx.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
    const color = model.get("mode") === "mask" ? "#ff00ff" : stroke.color;
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = stroke.size;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (points.length === 1) {
      ctx.beginPath();
      ctx.arc(points[0][0], points[0][1], stroke.size / 2, 0, 2 * Math.PI);
      ctx.fill();
    } else {
      ctx.beginPath();
      ctx.moveTo(points[0][0], points[0][1]);
      for (const [x, y] of points.slice(1)) ctx.lineTo(x, y);
      ctx.stroke();
    }
    ctx.restore();
  }

  function redraw() {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const stroke of model.get("strokes")) paint(stroke);
    if (current) paint(current);
  }

  function at(event) {
    const box = canvas.getBoundingClientRect();
    const x = (event.clientX - box.left) * canvas.width / box.width;
    const y = (event.clientY - box.top) * canvas.height / box.height;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0 || model.get("disabled")) return;
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    current = { points: [at(event)], size: model.get("brush_size"), color: model.get("brush_color"),
                erase: model.get("erasing") };
    redraw();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const move of moves.length ? moves : [event]) {
      const point = at(move), last = current.points[current.points.length - 1];
      if (Math.hypot(point[0] - last[0], point[1] - last[1]) >= 1) current.points.push(point);
    }
    redraw();
  });
  function finish() {
    if (!current) return;
    const done = current;
    current = null;
    model.set("strokes", [...model.get("strokes"), done]);
    model.save_changes();
    redraw();
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);

  model.on("change:strokes", redraw);
  model.on("change:background", background);
  for (const name of ["width", "height", "display_width", "mode"]) model.on(`change:${name}`, layout);
  background();
  layout();
  return () => { if (url) URL.revokeObjectURL(url); };
}

export default { render };
"""

_CSS = """
.kit-canvas-frame { position: relative; background: #ffffff; border: 1px solid var(--jp-border-color1, #999);
  box-sizing: content-box; touch-action: none; user-select: none; }
.kit-canvas-frame > img, .kit-canvas-frame > canvas { position: absolute; left: 0; top: 0;
  width: 100%; height: 100%; }
.kit-canvas-strokes { cursor: crosshair; touch-action: none; }
.kit-mask-mode .kit-canvas-strokes { opacity: 0.55; }
.kit-pixelated > img, .kit-pixelated > canvas, img.kit-pixelated { image-rendering: pixelated; }
"""


class SketchCanvas(anywidget.AnyWidget):
    """A drawing surface: `strokes` (a list of stroke dicts, see `kit.features.sketch`) is its state."""

    _esm = _ESM
    _css = _CSS

    width = T.Int(512, help="the drawing's width in pixels").tag(sync=True)
    height = T.Int(512, help="the drawing's height in pixels").tag(sync=True)
    display_width = T.Int(384, help="how wide it is shown, in screen pixels").tag(sync=True)
    strokes = T.List(help="the strokes drawn, oldest first").tag(sync=True)
    brush_size = T.Int(8, help="the next stroke's width in drawing pixels").tag(sync=True)
    brush_color = T.Unicode("#000000", help="the next stroke's colour, '#rrggbb'").tag(sync=True)
    erasing = T.Bool(False, help="the next stroke rubs out").tag(sync=True)
    mode = T.Enum(["draw", "mask"], "draw").tag(sync=True)
    background = T.Bytes(b"", help="PNG bytes shown under the strokes (a photo, or the picture to restore)").tag(
        sync=True
    )
    disabled = T.Bool(False, help="refuse new strokes").tag(sync=True)

    @T.validate("width", "height")
    def _side(self, proposal):
        return sketch.check_size((proposal["value"], sketch.MIN_SIDE))[0]
