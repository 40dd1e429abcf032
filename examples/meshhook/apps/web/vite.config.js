import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [sveltekit()],
  ssr: {
    // In this checkout @stackwatch/sdk is a link to clients/js, and Vite bundles linked packages as if they were
    // the app's own source. Kept external it is loaded from node_modules at run time, as an installed package is
    // (and as adapter-node does for every entry of "dependencies").
    external: ['@stackwatch/sdk'],
  },
});
