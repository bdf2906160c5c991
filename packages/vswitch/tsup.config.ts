import { packageConfig } from '../../tsup.shared';

export default packageConfig({ index: 'src/index.ts', node: 'src/node.ts', testing: 'src/testing.ts', cli: 'src/cli.ts' });
