"""The component's entry point: componentize-py exports the class bound to
`Connector` here. Built with `cargo xtask plugins` (see README.md)."""

from genesys import GenesysCloud
from presence_sdk.component import register

Connector = register(GenesysCloud)
