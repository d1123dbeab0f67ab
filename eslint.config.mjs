import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['**/dist/**', 'libs/proto/src/gen/**', '**/node_modules/**', 'bench/results/**', '.autoglm/**', 'scripts/**', 'jest.config.js', 'eslint.config.mjs', 'libs/client/bin/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/ignore': ['node_modules'] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'no-console': 'error',
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/libs/*/src/**', '**/services/*/src/**', '@autoglm/*/src/**'], message: 'Import another package through its name (its exports), not its sources.' }] }],
    },
  },
  {
    files: ['bench/**/*.ts', 'libs/client/src/cli/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
