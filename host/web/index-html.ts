/** The demo page's HTML (served by `virtio-net-wasm web`; its script is dist/browser/page.js). */
export const INDEX_HTML = `<!doctype html>
<html lang="en">
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>virtio-net-wasm: v86 guests on this NIC, in this page</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5em; }
  table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3em .6em; text-align: left; }
  td.f { font-family: monospace; font-size: 12px; max-width: 40em; }
  #counters { font-family: monospace; font-size: 12px; white-space: pre-wrap; }
  #error { color: #b00; white-space: pre-wrap; }
</style>
<h1>virtio-net-wasm in the browser</h1>
<p>Two Debian i386 guests in <a href="https://github.com/copy/v86">v86</a>, each with a virtio-net device served by this
engine (AssemblyScript → WebAssembly, working in place on the guest's RAM), on a switch with a DHCP gateway, all in this page.</p>
<table id="guests"></table>
<h2>frames/s</h2>
<canvas id="chart" width="600" height="120" style="border:1px solid #ccc"></canvas> <span id="rate"></span>
<h2>switch and gateway</h2>
<div id="counters"></div>
<div id="error"></div>
<script type="module" src="/dist/browser/page.js"></script>
</html>
`;
