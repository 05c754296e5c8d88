// Process B: asks for a mount by spawning A detached (own session), then idles.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
const server = fileURLToPath(new URL('./native-server.mjs', import.meta.url));
const a = spawn(process.execPath, [server, process.argv[2]], { detached: true, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
a.on('message', (m) => { console.log(`B pid=${process.pid}: A says ${m}`); a.disconnect(); a.unref(); });
setInterval(() => {}, 1 << 30);
