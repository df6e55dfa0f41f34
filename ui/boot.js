// Starts the UI (scripts/build-ui copies this beside the build's other files in assets/<hash>/).
import init from "./app.js";

// Pages are separate WebAssembly modules fetched on first use. After an update the server holds
// only the new build, so a tab opened before it cannot fetch the old build's pages and the app
// stops: when that happens and index.html names another build, load the new one.
const build = new URL(".", import.meta.url).pathname;
let checking = false;
async function newerBuild() {
  if (checking) return;
  checking = true;
  try {
    const index = await (await fetch("/", { cache: "no-store" })).text();
    if (!index.includes(build)) location.reload();
  } catch {
    // The server is unreachable: nothing newer to load.
  } finally {
    checking = false;
  }
}
addEventListener("unhandledrejection", newerBuild);
addEventListener("error", newerBuild);

init({ module_or_path: new URL("./app_bg.wasm", import.meta.url) });
