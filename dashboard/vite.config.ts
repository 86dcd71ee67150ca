// Builds the operator dashboard (index.html, served at `/`) and the cafe guest app (guest.html,
// served at `/t/<tableToken>`) into dist/. The guest entry shares no code with the dashboard but
// React and the protocol package, so a guest's phone loads only what the table page needs.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const entry = (file: string) => fileURLToPath(new URL(file, import.meta.url));

export default defineConfig({
  plugins: [
    react(),
    {
      // In `vite dev`, `/t/<tableToken>` is the guest page, as the server serves it in production.
      name: 'kioskhub-guest-route',
      configureServer(server) {
        server.middlewares.use((req, _res, next) => {
          if (req.url?.startsWith('/t/')) req.url = '/guest.html';
          next();
        });
      },
    },
  ],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
    rolldownOptions: {
      input: { main: entry('./index.html'), guest: entry('./guest.html') },
    },
  },
  server: {
    // `npm run dev -w dashboard` next to `npm start`: API and sockets go to the server.
    proxy: {
      '/v1': 'http://127.0.0.1:8080',
      '/api': 'http://127.0.0.1:8080',
      '/socket.io': { target: 'http://127.0.0.1:8080', ws: true },
    },
  },
});
